"""The seam every deployment target plugs into.

Render decides *what* each tenant is (``infra/render``); a target decides *where* it runs and
*how* it is started, turning the same ``RenderedTenant``s into its own artefacts. The command
layer picks the target (``deployment.target``, or ``--target``) and never branches on its
name; nothing outside ``infra/targets/<name>/`` knows a target's details.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from infra.spec import TenantSpec

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Artefact:
    """One file a target rendered: where it is, what it is for, and its checksum."""

    path: str  # relative to the output folder
    purpose: str
    sha256: str


@dataclass(frozen=True)
class SecretReference:
    """A secret the rendered files need, named by where it is kept — never its value."""

    name: str
    reference: str
    used_by: str


@dataclass
class Manifest:
    """What ``render --out`` wrote: every file, and every secret the files refer to."""

    target: str
    tenants: list[str]
    files: list[Artefact] = field(default_factory=list)
    secrets: list[SecretReference] = field(default_factory=list)

    def write_file(self, out: Path, relative: str, content: bytes | str, purpose: str) -> Path:
        """Write one artefact under ``out`` and record it."""
        data = content.encode("utf-8") if isinstance(content, str) else content
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.files.append(Artefact(relative, purpose, hashlib.sha256(data).hexdigest()))
        return path

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "tenants": self.tenants,
            "files": [vars(f) for f in self.files],
            "secrets": [vars(s) for s in self.secrets],
        }

    def save(self, out: Path) -> Path:
        path = out / "manifest.json"
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n", encoding="utf-8")
        return path


class Target(Protocol):
    """A place tenants run: the laptop, VMs, Kubernetes, AWS."""

    name: str

    def render(self, specs: Sequence[TenantSpec], codes: Sequence[str], out: Path) -> Manifest:
        """Write the target's inputs for ``codes`` into ``out``; no secret value in them."""
        ...

    def deploy(self, specs: Sequence[TenantSpec], codes: Sequence[str], progress: Progress) -> Any:
        """Bring the tenants ``codes`` up, or repair them. Idempotent."""
        ...

    def status(self, specs: Sequence[TenantSpec]) -> dict[str, Any]:
        """Each component's health, as ``karmayogi status --json`` prints it."""
        ...

    def logs(self, name: str) -> Path:
        """The log file of a component (a tenant's code, ``keycloak``, ``federation``)."""
        ...

    def remove(
        self, code: str, specs: Sequence[TenantSpec], tenants: Path, progress: Progress
    ) -> Any:
        """Offboard one tenant: archive first, then delete what the target made."""
        ...

    def membership(self, specs: Sequence[TenantSpec]) -> Any:
        """The federation handshake and member list on this target (DESIGN §10)."""
        ...
