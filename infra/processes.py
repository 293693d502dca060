"""Processes the kit starts: found by PID and command line, awaited over HTTP, stopped by group.

Every service runs in its own session (``start_new_session``), so stopping its group stops
whatever it forked; a PID is trusted only while its command line still names the service, so a
recycled PID is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from infra.errors import KitError


def pid_alive(pid: int, marker: str) -> bool:
    """Whether ``pid`` runs and is ours (its command line holds ``marker``)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return marker.encode() in cmdline


def stop_process_group(pid: int, timeout: float = 30.0) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie leader still answers; reap it if it is our child.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_for_http(
    url: str,
    *,
    name: str,
    log: Path,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    error: type[KitError] = KitError,
    interval: float = 0.3,
) -> None:
    """Poll ``url`` until it answers 200; fail with the log's tail if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise error(
                f"{name} exited with code {process.returncode} while starting; "
                f"see {log}:\n{tail(log)}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(interval)
    raise error(f"{name} did not answer within {timeout:.0f} s; see {log}")
