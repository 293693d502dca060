"""Backup and restore, one format for every target (docs/backup.md).

``make_backup`` asks a :class:`~infra.backup.sources.BackupSource` for its parts, stores each
with its size and SHA-256 in a :class:`~infra.backup.stores.BackupStore` (a folder or S3), and
stores ``manifest.json`` last. ``restore_backup`` reads the manifest, downloads and verifies
every part, and only then lets the source put them back. ``list_backups`` and ``prune``
work on any store alike.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

from infra.backup.format import (
    FORMAT_VERSION,
    MANIFEST,
    BackupError,
    BackupManifest,
    Part,
    backup_name,
    file_digest,
    name_time,
)
from infra.backup.sources import BackupSource
from infra.backup.stores import BackupStore

Progress = Callable[[str], None]

__all__ = [
    "BackupEntry",
    "BackupError",
    "list_backups",
    "make_backup",
    "prune",
    "restore_backup",
]


def kit_version() -> str:
    try:
        return metadata.version("karmayogi-kit")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class BackupEntry:
    """One backup in a store, as ``karmayogi backups`` lists it."""

    name: str
    location: str
    started: datetime
    manifest: BackupManifest | None  # None: incomplete

    @property
    def complete(self) -> bool:
        return self.manifest is not None

    def as_dict(self) -> dict[str, Any]:
        manifest = self.manifest
        return {
            "name": self.name,
            "location": self.location,
            "complete": self.complete,
            "started": self.started.isoformat(),
            "created_at": manifest.created_at if manifest else None,
            "deployment": manifest.deployment if manifest else None,
            "tenants": list(manifest.tenants) if manifest else [],
            "size": sum(p.size for p in manifest.parts) if manifest else None,
        }


def make_backup(
    source: BackupSource,
    store: BackupStore,
    progress: Progress,
    *,
    now: datetime | None = None,
    scratch_root: Path | None = None,
) -> BackupEntry:
    """Take one backup of ``source`` into ``store``; its manifest is stored last.

    When anything fails, the parts already stored stay as an incomplete backup (no manifest):
    never listed as good, never restored, removed by ``prune(..., incomplete=True)``.
    """
    started = now or datetime.now(UTC)
    name = backup_name(started)
    store.open(name)  # an unusable destination fails here, before any dump is made
    location = f"{store.location}/{name}"
    parts: list[Part] = []
    try:
        with tempfile.TemporaryDirectory(prefix="karmayogi-backup-", dir=scratch_root) as scratch:
            files = source.dump(Path(scratch), progress)
            for file in files:
                size, sha256 = file_digest(file.path)
                store.put(name, file.name, file.path)
                parts.append(Part(file.name, file.kind, file.tenant, file.method, size, sha256))
                progress(f"stored {file.name} ({size} bytes)")
        manifest = BackupManifest(
            format=FORMAT_VERSION,
            source=source.kind,
            deployment=source.deployment,
            tenants=source.tenants,
            kit_version=kit_version(),
            # When the dumps began: the data is from that moment on.
            created_at=started.astimezone(UTC).isoformat(timespec="seconds"),
            parts=tuple(parts),
        )
        store.put_bytes(name, MANIFEST, manifest.to_bytes())
    except (BackupError, OSError, sqlite3.Error) as exc:
        if not isinstance(exc, BackupError):
            exc = BackupError(f"backing up to {location}: {exc}")
        if not parts:
            # Nothing stored yet: leave no empty backup behind (best effort).
            with contextlib.suppress(Exception):
                store.delete(name)
            raise exc from None
        raise BackupError(
            f"{exc}; {location} is left incomplete (no {MANIFEST}), never restored; "
            "`karmayogi backups --drop-incomplete` removes it"
        ) from None
    progress(f"stored {MANIFEST}: backup {location} is complete")
    return BackupEntry(name, location, started, manifest)


def _manifest_of(store: BackupStore, name: str) -> BackupManifest | None:
    data = store.read(name, MANIFEST)
    if data is None:
        return None
    return BackupManifest.parse(data, f"{store.location}/{name}/{MANIFEST}")


def list_backups(store: BackupStore) -> list[BackupEntry]:
    """Every backup in ``store``, newest first; folders not named like a backup are ignored."""
    entries = []
    for name in store.names():
        started = name_time(name)
        if started is None:
            continue
        entries.append(
            BackupEntry(name, f"{store.location}/{name}", started, _manifest_of(store, name))
        )
    return sorted(entries, key=lambda e: e.started, reverse=True)


def prune(
    store: BackupStore,
    *,
    keep: int | None = None,
    max_age: timedelta | None = None,
    incomplete: bool = False,
    now: datetime | None = None,
) -> list[BackupEntry]:
    """Remove complete backups that no rule keeps, and with ``incomplete`` the incomplete
    ones older than the newest complete backup; what was removed, oldest first.

    A complete backup is kept when it is among the newest ``keep`` or younger than
    ``max_age``; the newest complete backup is always kept. An incomplete backup newer than
    the newest complete one may still be being written, so it is never removed.
    """
    if keep is not None and keep < 1:
        raise BackupError(f"--keep {keep}: keep at least one backup")
    moment = now or datetime.now(UTC)
    entries = list_backups(store)
    complete = [e for e in entries if e.manifest is not None]
    doomed: list[BackupEntry] = []
    if keep is not None or max_age is not None:
        for index, entry in enumerate(complete):
            assert entry.manifest is not None
            by_count = keep is not None and index < keep
            by_age = max_age is not None and moment - entry.manifest.created <= max_age
            if index > 0 and not by_count and not by_age:
                doomed.append(entry)
    if incomplete and complete:
        newest = complete[0].started
        doomed += [e for e in entries if e.manifest is None and e.started < newest]
    doomed.sort(key=lambda e: e.started)
    for entry in doomed:
        store.delete(entry.name)
    return doomed


def restore_backup(
    source: BackupSource,
    store: BackupStore,
    name: str,
    progress: Progress,
    *,
    scratch_root: Path | None = None,
) -> BackupManifest:
    """Restore backup ``name``: manifest read, every part downloaded and checked against its
    size and SHA-256, and only then anything of ``source`` touched."""
    location = f"{store.location}/{name}"
    if name_time(name) is None:
        raise BackupError(
            f"{location} does not name a backup (a backup is named by its UTC time, such as "
            "20261205T020000Z); `karmayogi backups --to …` lists them"
        )
    manifest = _manifest_of(store, name)
    if manifest is None:
        known = name in store.names()
        raise BackupError(
            f"{location} has no {MANIFEST}: it is incomplete and cannot be restored"
            if known
            else f"{location}: no such backup"
        )
    if manifest.source != source.kind:
        raise BackupError(
            f"{location} is a backup of a {manifest.source} deployment; it cannot be restored "
            f"onto a {source.kind} one (choose the deployment with --source)"
        )
    source.check_restorable(manifest)
    if manifest.kit_version != kit_version():
        progress(
            f"note: the backup was made by kit {manifest.kit_version}, this is {kit_version()}; "
            "the databases are as that kit left them; `karmayogi up` (or the target's "
            "deploy) runs the portal's migrations"
        )
    with tempfile.TemporaryDirectory(prefix="karmayogi-restore-", dir=scratch_root) as scratch:
        files: dict[str, Path] = {}
        for part in manifest.parts:
            target = Path(scratch) / part.name
            store.get(name, part.name, target)
            size, sha256 = file_digest(target)
            if (size, sha256) != (part.size, part.sha256):
                raise BackupError(
                    f"{location}: part {part.name} does not match its checksum in {MANIFEST} "
                    "(corrupted or altered); nothing was restored"
                )
            files[part.name] = target
        progress(f"verified {len(files)} part(s) of {location}")
        source.restore(manifest, files, progress)
    return manifest


def describe_parts(parts: Sequence[Part]) -> list[str]:
    return [f"{p.name}  {p.size} bytes  sha256 {p.sha256[:12]}…  ({p.method})" for p in parts]
