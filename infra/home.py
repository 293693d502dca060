"""Where the kit keeps local state, downloads and secrets.

``$KARMAYOGI_HOME`` (default ``~/.karmayogi``) holds everything a local federation owns:
Keycloak's install and data, secrets, logs. ``$KARMAYOGI_CACHE`` (default
``~/.cache/karmayogi``) holds downloads shared by every home on the machine, so a test
session with a home of its own does not download Keycloak again.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class KitHome:
    """The folders of one local federation."""

    root: Path
    cache: Path

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> KitHome:
        """Resolve the home and cache from the environment (entry points only)."""
        env = dict(os.environ) if env is None else env
        root = Path(env.get("KARMAYOGI_HOME") or Path.home() / ".karmayogi")
        cache = Path(env.get("KARMAYOGI_CACHE") or Path.home() / ".cache" / "karmayogi")
        return cls(root=root.expanduser().resolve(), cache=cache.expanduser().resolve())

    @property
    def keycloak(self) -> Path:
        return self.root / "keycloak"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def themes(self) -> Path:
        """Login themes the kit renders; the local Keycloak reads them from here."""
        return self.root / "themes"

    @property
    def rendered(self) -> Path:
        """Per-tenant rendered configuration (portal env, redirect URIs, ...)."""
        return self.root / "rendered"


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` readable by the owner only, atomically.

    The file is created 0600 before any byte is written, so a secret is never readable by
    others, and a crash leaves either the old file or the new one.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` when the file does not exist."""
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def new_password(nbytes: int = 24) -> str:
    """A random password that is safe in URLs, shells and JSON."""
    return secrets.token_urlsafe(nbytes)
