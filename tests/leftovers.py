"""Processes a test's kit home left behind, found and killed (after `down`, for a failed test)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def processes_under(root: Path) -> list[int]:
    """Processes whose command line or environment names this kit home."""
    found = []
    marker = str(root).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue
        if marker in seen:
            found.append(int(proc.name))
    return found


def kill_leftovers(root: Path) -> None:
    """Whatever `down` missed: the kit home's processes."""
    for pid in processes_under(root):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
