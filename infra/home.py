"""Where the kit keeps local state, downloads and secrets.

``$KARMAYOGI_HOME`` (default ``~/.karmayogi``) holds everything a local federation owns:
Keycloak's install and data, secrets, logs. ``$KARMAYOGI_CACHE`` (default
``~/.cache/karmayogi``) holds downloads shared by every home on the machine, so a test
session with a home of its own does not download Keycloak again.

The home is the operator's alone: its folder is 0700, and what the kit and the services it
starts write there (logs, databases, Keycloak's store) is 0600, folders 0700
(:data:`PRIVATE_UMASK` for the processes, :func:`open_private_log` for the logs they write to).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

# The umask of every process the kit starts: what they create is the operator's alone.
PRIVATE_UMASK = 0o077


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

    def create(self) -> Path:
        """Make the home's folder (0700, also when it existed with a wider mode)."""
        make_private_dir(self.root)
        return self.root

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


def write_private_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, a file readable by the owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def make_private_dir(path: Path) -> None:
    """``path`` and its missing parents exist; ``path`` and the parents made here are 0700."""
    made = [folder for folder in (path, *path.parents) if not folder.exists()]
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for folder in {path, *made}:
        os.chmod(folder, 0o700)


def open_private_log(path: Path) -> BinaryIO:
    """``path`` opened for appending, created 0600 in a 0700 folder; a log an older kit left
    readable by others is narrowed to 0600."""
    make_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab")


def copy_private(source: Path, target: Path) -> None:
    """Copy ``source`` to a new file ``target`` that is 0600 from its first byte."""
    make_private_dir(target.parent)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out, source.open("rb") as data:
        shutil.copyfileobj(data, out)


def make_private(path: Path) -> None:
    """Take every permission of group and others off ``path`` and everything under it
    (symbolic links are left alone): state an older kit left readable becomes private."""
    if not path.exists():
        return
    names = [str(path)]
    for folder, dirs, files in os.walk(path):
        names += [os.path.join(folder, name) for name in (*dirs, *files)]
    for name in names:
        mode = os.lstat(name).st_mode
        if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
            os.chmod(name, stat.S_IMODE(mode) & 0o700)


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
