"""What the portal benchmarks share: their error, and a portal served by gunicorn for a block.

Waiting for the portal is the kit's own ``infra.processes.wait_for_http``, as when ``make up``
starts one.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infra.errors import KitError
from infra.targets.local.processes import stop_process_group, wait_for_http

HOST = "127.0.0.1"
THREADS = 4  # as the kit runs each local portal: gthread workers with 4 threads
START_TIMEOUT = 60.0


class BenchError(KitError):
    """The benchmark could not set up, or would measure something else than asked."""


def run_in(
    data_dir: Path, command: list[str], what: str, timeout: float, env: dict[str, str] | None = None
) -> str:
    """Run ``command`` from a portal's data folder, as the kit runs it (compilemessages walks
    the working directory); its stdout, or :class:`BenchError` with the output's tail."""
    try:
        result = subprocess.run(
            command,
            cwd=data_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what} took over {timeout:.0f} s") from None
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise BenchError(f"{what} failed:\n{output}")
    return result.stdout


@contextmanager
def gunicorn(
    data_dir: Path, port: int, workers: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[int]:
    """The portal in ``data_dir`` served on ``port`` for the block; yields the master's pid."""
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "tenant_portal.wsgi:application",
        f"--bind={HOST}:{port}",
        f"--workers={workers}",
        "--worker-class=gthread",
        f"--threads={THREADS}",
        f"--error-logfile={log}",
        "--log-level=warning",
        "--graceful-timeout=10",
        "--no-control-socket",  # one path per user; the benchmark stops gunicorn by signal
    ]
    with log.open("ab") as out:
        # Its own session: Ctrl-C reaches the benchmark, which then stops the whole group.
        process = subprocess.Popen(
            command,
            cwd=data_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_http(
            f"http://{HOST}:{port}/healthz",
            name="gunicorn",
            log=log,
            timeout=START_TIMEOUT,
            process=process,
            error=BenchError,
        )
        yield process.pid
    finally:
        stop_process_group(process.pid, timeout=30)
