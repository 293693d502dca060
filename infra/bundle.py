"""A wheelhouse: the kit and every dependency as wheels, for hosts without an index.

``pip install --no-index --find-links <wheelhouse> karmayogi-kit`` then installs the kit on a
data centre's server that reaches no package index. The dependencies' wheels are built once per
``pyproject.toml`` (and Python version) and cached under ``<cache>/wheelhouse/<key>``; the kit's
own wheel is built again on every call, since its code changes without its pyproject changing.
The dependencies are chosen for the servers' Python, Debian 12's python3 (3.11.2), not this
machine's: a release that wants a later 3.11 (soupsieve 4 wants 3.11.5) would not install there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from infra.errors import KitError

COMPLETE = ".complete"
# The servers' Python (Debian 12), and the manylinux tags its glibc (2.36) runs.
SERVER_PYTHON = "3.11.2"
_GLIBC_MINORS = (5, 12, 17, 24, 26, 27, 28, 31, 34, 35, 36)


@dataclass(frozen=True)
class Wheelhouse:
    path: Path
    key: str
    wheels: tuple[str, ...]
    reused: bool


@contextlib.contextmanager
def source_build_lock(root: Path) -> Iterator[None]:
    """One wheel build of the source tree at a time (setuptools builds in its ``build/``
    folder, which two builds at once would tear up): an exclusive lock on its pyproject.toml."""
    with (root / "pyproject.toml").open("rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def source_root() -> Path:
    """The kit's source tree (the folder of its ``pyproject.toml``)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        raise KitError(f"{root}: no pyproject.toml; `karmayogi bundle` runs from a kit checkout")
    return root


def wheelhouse_key(pyproject: Path) -> str:
    """The cache key: the pyproject's content and the servers' Python."""
    digest = hashlib.sha256(pyproject.read_bytes())
    digest.update(f"cp{SERVER_PYTHON}".encode())
    return digest.hexdigest()[:16]


def build_wheelhouse(
    cache: Path,
    *,
    out: Path | None = None,
    output: TextIO | None = None,
) -> Wheelhouse:
    """Fill the wheelhouse (``out``, or the cache's for this pyproject) and list its wheels.

    pip's progress goes to ``output``; a failed build raises with pip's exit code and leaves the
    folder unmarked, so the next call builds it again.
    """
    root = source_root()
    key = wheelhouse_key(root / "pyproject.toml")
    target = out or cache / "wheelhouse" / key
    target.mkdir(parents=True, exist_ok=True)
    # One filler at a time: two sessions may share the cache's wheelhouse.
    with (target.parent / f".{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        reused = (target / COMPLETE).is_file()
        with tempfile.TemporaryDirectory() as built:
            with source_build_lock(root):
                code = _pip(["wheel", "--no-deps", "--wheel-dir", built, str(root)], output)
            if code != 0:
                raise KitError(f"pip wheel exited {code} while building the kit (output above)")
            [kit] = Path(built).glob("*.whl")
            # Once the dependencies are there, only the kit's own wheel is built again.
            if not reused:
                code = _pip(_download(kit, target), output)
                if code != 0:
                    raise KitError(
                        f"pip download exited {code} while filling {target} (pip's output above)"
                    )
            shutil.copy2(kit, target / kit.name)
        if not reused:
            (target / COMPLETE).write_text(f"{key}\n", encoding="utf-8")
    wheels = tuple(sorted(p.name for p in target.glob("*.whl")))
    return Wheelhouse(path=target, key=key, wheels=wheels, reused=reused)


def _download(kit: Path, target: Path) -> list[str]:
    """pip's arguments for ``kit``'s dependencies as wheels for the servers' Python."""
    machine = platform.machine()
    platforms = [f"--platform=manylinux_2_{minor}_{machine}" for minor in _GLIBC_MINORS]
    platforms += [f"--platform=manylinux2014_{machine}", f"--platform=manylinux1_{machine}"]
    return [
        "download",
        "--only-binary=:all:",
        f"--python-version={SERVER_PYTHON}",
        "--implementation=cp",
        "--abi=cp311",
        "--abi=abi3",
        "--abi=none",
        *platforms,
        "--platform=any",
        "--dest",
        str(target),
        str(kit),
    ]


def _pip(args: list[str], output: TextIO | None) -> int:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    stream = output or sys.stderr
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            stream.write(line)
    return process.returncode
