"""Starting services: Ctrl-C never falls between starting a server and recording its PID,
and a server of ours that no state file names can be found."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from infra.targets.local import processes
from infra.targets.local.processes import (
    pid_alive,
    session_leaders_naming,
    settle_spawns,
    spawn,
    stop_process_group,
)


def _sleeper(marker: str) -> list[str]:
    return [sys.executable, "-c", "import time; time.sleep(60)", marker]


def _until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether ``check`` comes true within ``timeout``: Popen returns once the child's exec
    has begun, and /proc shows its new command line a moment later (longer on a busy
    machine)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_ctrl_c_while_starting_waits_until_the_pid_is_recorded(tmp_path: Path) -> None:
    marker = f"spawn-{uuid.uuid4().hex}"
    recorded: list[int] = []

    def record(pid: int) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C lands between start and record
        recorded.append(pid)

    # As in a terminal, whatever started the suite: a background job of a script starts
    # with SIGINT ignored, and Python then installs no KeyboardInterrupt handler.
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    with pytest.raises(KeyboardInterrupt):
        spawn(_sleeper(marker), tmp_path / "log", record)
    try:
        assert len(recorded) == 1 and _until(lambda: pid_alive(recorded[0], marker))
        # The handler is back: the next Ctrl-C is a KeyboardInterrupt at once.
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)
        for pid in recorded:
            stop_process_group(pid, timeout=5)


def test_a_started_server_is_found_by_its_command_line_alone(tmp_path: Path) -> None:
    marker = f"spawn-{uuid.uuid4().hex}"
    process = spawn(_sleeper(f"--tag={marker}"), tmp_path / "log", lambda pid: None)
    try:
        assert _until(lambda: session_leaders_naming(f"--tag={marker} ") == [process.pid])
        # Markers match whole arguments: a longer name is another service.
        assert session_leaders_naming(f"--tag={marker[:-1]} ") == []
    finally:
        stop_process_group(process.pid, timeout=5)
        process.wait(timeout=5)
    assert session_leaders_naming(f"--tag={marker} ") == []


def test_settling_waits_for_a_spawn_in_another_thread(tmp_path: Path) -> None:
    marker = f"spawn-{uuid.uuid4().hex}"
    in_record, release = threading.Event(), threading.Event()
    recorded: list[int] = []

    def record(pid: int) -> None:
        in_record.set()
        release.wait(timeout=10)
        recorded.append(pid)

    worker = threading.Thread(target=spawn, args=(_sleeper(marker), tmp_path / "log", record))
    worker.start()
    assert in_record.wait(timeout=10)
    threading.Timer(0.5, release.set).start()
    settle_spawns()  # returns only once the worker has recorded its PID
    try:
        assert len(recorded) == 1
    finally:
        # settle_spawns keeps the lock (its caller is leaving): hand it back for the suite.
        processes._spawning.release()
        worker.join(timeout=10)
        for pid in recorded:
            stop_process_group(pid, timeout=5)
