"""The backup format, the same on every target (docs/backup.md).

A backup is a folder, or an S3 prefix, named by its UTC time (``20261205T211500Z``). It holds
one file per part — each database's dump and each portal's media as a tar — and, written
last, ``manifest.json`` naming every part with its size, SHA-256 and how it was made. A
backup without a manifest is incomplete: it is listed as such and never restored.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.errors import KitError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
NAME_PATTERN = re.compile(r"\d{8}T\d{6}Z")
PART_NAME = re.compile(r"[a-z0-9][a-z0-9.-]*")
CHUNK = 1024 * 1024


class BackupError(KitError):
    """A backup or restore that cannot go on; says which backup, part or file is at fault."""


def backup_name(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(STAMP_FORMAT)


def name_time(name: str) -> datetime | None:
    """When the backup called ``name`` was started, or None for a name that is not ours."""
    if not NAME_PATTERN.fullmatch(name):
        return None
    return datetime.strptime(name, STAMP_FORMAT).replace(tzinfo=UTC)


def file_digest(path: Path) -> tuple[int, str]:
    """The size and SHA-256 of ``path``, read in chunks (dumps can be large)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


@dataclass(frozen=True)
class PartFile:
    """One part a source wrote into the scratch folder, before it is stored."""

    name: str
    kind: str  # portal-database | keycloak-database | media
    tenant: str | None
    method: str
    path: Path


@dataclass(frozen=True)
class Part:
    """One part as the manifest records it."""

    name: str
    kind: str
    tenant: str | None
    method: str
    size: int
    sha256: str


@dataclass(frozen=True)
class BackupManifest:
    format: int
    source: str  # the kind of deployment: local | postgresql
    deployment: str
    tenants: tuple[str, ...]
    kit_version: str
    created_at: str  # ISO 8601, UTC
    parts: tuple[Part, ...]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tenants"] = list(self.tenants)
        data["parts"] = [asdict(p) for p in self.parts]
        return data

    def to_bytes(self) -> bytes:
        return (json.dumps(self.as_dict(), indent=2) + "\n").encode("utf-8")

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.created_at)

    def part(self, name: str) -> Part:
        return next(p for p in self.parts if p.name == name)

    @classmethod
    def parse(cls, data: bytes, where: str) -> BackupManifest:
        """Read a manifest; a field missing or of the wrong type is named with ``where``."""
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BackupError(f"{where}: not JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise BackupError(f"{where}: expected a JSON object")
        version = raw.get("format")
        if version != FORMAT_VERSION:
            raise BackupError(
                f"{where}: format {version!r} is not one this kit reads (it reads {FORMAT_VERSION})"
            )

        def text(obj: dict[str, Any], key: str, at: str) -> str:
            value = obj.get(key)
            if not isinstance(value, str) or not value:
                raise BackupError(f"{where}: {at}{key} must be a non-empty string")
            return value

        parts = []
        raw_parts = raw.get("parts")
        if not isinstance(raw_parts, list) or not raw_parts:
            raise BackupError(f"{where}: parts must be a non-empty list")
        for i, item in enumerate(raw_parts):
            at = f"parts[{i}]."
            if not isinstance(item, dict):
                raise BackupError(f"{where}: parts[{i}] must be an object")
            name = text(item, "name", at)
            if not PART_NAME.fullmatch(name) or name == MANIFEST:
                raise BackupError(f"{where}: {at}name {name!r} is not a part's file name")
            size = item.get("size")
            if not isinstance(size, int) or size < 0:
                raise BackupError(f"{where}: {at}size must be a whole number of bytes")
            sha = text(item, "sha256", at)
            if not re.fullmatch(r"[0-9a-f]{64}", sha):
                raise BackupError(f"{where}: {at}sha256 must be 64 hex digits")
            tenant = item.get("tenant")
            if tenant is not None and not isinstance(tenant, str):
                raise BackupError(f"{where}: {at}tenant must be a string or null")
            parts.append(
                Part(name, text(item, "kind", at), tenant, text(item, "method", at), size, sha)
            )
        tenants = raw.get("tenants")
        if not isinstance(tenants, list) or not all(isinstance(t, str) for t in tenants):
            raise BackupError(f"{where}: tenants must be a list of tenant codes")
        created_at = text(raw, "created_at", "")
        try:
            datetime.fromisoformat(created_at)
        except ValueError:
            raise BackupError(f"{where}: created_at {created_at!r} is not an ISO time") from None
        return cls(
            format=FORMAT_VERSION,
            source=text(raw, "source", ""),
            deployment=text(raw, "deployment", ""),
            tenants=tuple(tenants),
            kit_version=text(raw, "kit_version", ""),
            created_at=created_at,
            parts=tuple(parts),
        )
