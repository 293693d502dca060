"""Processes the kit starts: found by PID and command line, awaited over HTTP, stopped by group.

Every service runs in its own session (``start_new_session``), so stopping its group stops
whatever it forked; a PID is trusted only while its command line still names the service, so a
recycled PID is never signalled. A service is started and its PID recorded as one step
(:func:`spawn`), so a command interrupted by Ctrl-C never leaves a server running that no
state file names.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from infra.errors import KitError
from infra.home import PRIVATE_UMASK, open_private_log


def pid_alive(pid: int, marker: str) -> bool:
    """Whether ``pid`` runs and is ours (its command line holds ``marker``)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return marker.encode() in cmdline


_spawning = threading.Lock()


def spawn(
    command: Sequence[str], log: Path, record: Callable[[int], None], **popen: Any
) -> subprocess.Popen[bytes]:
    """Start a service in a session of its own, its output appended to ``log``, and hand its
    PID to ``record`` (which writes it to a state file) as one step.

    The log is 0600, and the service runs with umask 077: the files it makes (a database,
    Keycloak's store, its own logs) are the operator's alone.

    Ctrl-C cannot fall between the two: in the main thread it waits until the PID is
    recorded, and a command leaving on Ctrl-C first calls :func:`settle_spawns`, which waits
    for any other thread to finish its step.
    """
    popen.setdefault("umask", PRIVATE_UMASK)
    with _spawning, _interrupts_held(), open_private_log(log) as handle:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **popen,
        )
        record(process.pid)
    return process


def settle_spawns(timeout: float = 10.0) -> None:
    """Wait until no thread is between starting a service and recording its PID, and keep
    every thread from starting another; for a command about to leave without its threads."""
    _spawning.acquire(timeout=timeout)


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """In the main thread, hold SIGINT until the block ends, then raise it as it would have
    been; elsewhere (where Python never delivers signals) do nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[tuple[int, FrameType | None]] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if held and callable(previous):
            previous(*held[0])


def session_leaders_naming(*markers: str) -> list[int]:
    """PIDs of the session leaders whose command line holds every one of ``markers``: a
    service the kit started, found when no state file names it."""
    found = []
    wanted = [m.encode() for m in markers]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        pid = int(proc.name)
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            leader = os.getsid(pid) == pid
        except OSError:
            continue
        if leader and all(m in cmdline for m in wanted):
            found.append(pid)
    return found


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
