"""A wheelhouse: the kit and every dependency as wheels, for hosts without an index.

``pip install --no-index --find-links <wheelhouse> karmayogi-kit`` then installs the kit on a
data centre's server that reaches no package index. The dependencies' wheels are built once per
``pyproject.toml`` (and Python version) and cached under ``<cache>/wheelhouse/<key>``; the kit's
own wheel is built again on every call, since its code changes without its pyproject changing.
Wheels are built by this Python, so they fit servers of the same Python (Debian 12: 3.11).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from infra.errors import KitError

COMPLETE = ".complete"


@dataclass(frozen=True)
class Wheelhouse:
    path: Path
    key: str
    wheels: tuple[str, ...]
    reused: bool


def source_root() -> Path:
    """The kit's source tree (the folder of its ``pyproject.toml``)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        raise KitError(f"{root}: no pyproject.toml; `karmayogi bundle` runs from a kit checkout")
    return root


def wheelhouse_key(pyproject: Path) -> str:
    """The cache key: the pyproject's content and this Python's version."""
    digest = hashlib.sha256(pyproject.read_bytes())
    digest.update(f"cp{sys.version_info.major}{sys.version_info.minor}".encode())
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
    reused = (target / COMPLETE).is_file()
    # Once the dependencies are there, only the kit's own wheel is built again.
    args = ["wheel", "--wheel-dir", str(target), *(["--no-deps"] if reused else []), str(root)]
    code = _pip(args, output)
    if code != 0:
        raise KitError(f"pip wheel exited {code} while filling {target} (pip's output above)")
    if not reused:
        (target / COMPLETE).write_text(f"{key}\n", encoding="utf-8")
    wheels = tuple(sorted(p.name for p in target.glob("*.whl")))
    return Wheelhouse(path=target, key=key, wheels=wheels, reused=reused)


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
