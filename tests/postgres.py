"""A private PostgreSQL for the test suite: its own cluster in a temp folder, on loopback.

`running_postgres` runs `initdb` into a fresh folder, starts the server on a free port of
127.0.0.1 and removes everything again when the block ends, whether it ends well or not.
PostgreSQL refuses to run as root, so when the suite runs as root the server runs as the
unprivileged system user `karmayogi-pg` (created on first use).
"""

from __future__ import annotations

import locale
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

PG_ROOT = Path("/usr/lib/postgresql")  # the Debian layout: /usr/lib/postgresql/<major>/bin
SERVICE_USER = "karmayogi-pg"
SUPERUSER = "karmayogi"
HOST = "127.0.0.1"
START_ATTEMPTS = 5
COMMAND_TIMEOUT = 120.0
# sun_path holds 108 bytes including the trailing NUL; the server refuses longer socket paths.
MAX_SOCKET_PATH = 107


class PostgresError(RuntimeError):
    """The test PostgreSQL could not be found, started or stopped."""


@dataclass(frozen=True)
class PostgresServer:
    """A running server; the superuser authenticates with a password over TCP."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    data_dir: Path
    bin_dir: Path

    def url(self, database: str = "postgres") -> str:
        """A libpq URL for `database` on this server."""
        return (
            f"postgresql://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.port}/{quote(database, safe='')}"
        )

    def create_database(self, name: str) -> None:
        """Create an empty database owned by the superuser."""
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def find_postgres_bin(env: Mapping[str, str] | None = None, root: Path = PG_ROOT) -> Path:
    """The folder holding `initdb` and `pg_ctl`: `$KARMAYOGI_PG_BIN`, else the newest Debian one."""
    env = os.environ if env is None else env
    override = env.get("KARMAYOGI_PG_BIN")
    if override:
        bin_dir = Path(override)
        if not _has_server_tools(bin_dir):
            raise PostgresError(
                f"KARMAYOGI_PG_BIN={override} does not hold initdb and pg_ctl; "
                "point it at a PostgreSQL bin folder or unset it"
            )
        return bin_dir
    candidates = [
        (version, path / "bin")
        for path in (root.iterdir() if root.is_dir() else [])
        if (version := _major_version(path.name)) is not None and _has_server_tools(path / "bin")
    ]
    if not candidates:
        raise PostgresError(
            f"no PostgreSQL server found under {root}; install it with `apt-get install "
            "postgresql` (or set KARMAYOGI_PG_BIN to a folder holding initdb and pg_ctl)"
        )
    return max(candidates)[1]


@contextmanager
def running_postgres(base: Path) -> Iterator[PostgresServer]:
    """A fresh cluster, started for the block and stopped and deleted after it.

    The cluster lives in its own short temp folder (unix socket paths are limited in length,
    and when running as root the server's user must reach it, which it cannot under pytest's
    0700 folders); its server log is copied to `base` at the end for post-mortems.
    """
    bin_dir = find_postgres_bin()
    run_as = _service_user() if os.geteuid() == 0 else None
    cluster = Path(tempfile.mkdtemp(prefix="karmayogi-pg-"))
    data_dir = cluster / "data"
    log_file = cluster / "postgresql.log"
    try:
        _check_socket_path(cluster)
        if run_as is not None:
            os.chown(cluster, run_as.pw_uid, run_as.pw_gid)
        password = secrets.token_urlsafe(24)
        _initdb(bin_dir, data_dir, cluster, password, run_as)
        _write_settings(data_dir, socket_dir=cluster)
        port = _start(bin_dir, data_dir, log_file, cluster, run_as)
        yield PostgresServer(
            host=HOST,
            port=port,
            user=SUPERUSER,
            password=password,
            data_dir=data_dir,
            bin_dir=bin_dir,
        )
    finally:
        try:
            # The pid file, not pg_ctl's exit code, says whether a server may be running: a
            # start that timed out can leave one behind.
            if (data_dir / "postmaster.pid").exists():
                _stop(bin_dir, data_dir, cluster, run_as)
        finally:
            if log_file.exists():
                with suppress(OSError):
                    shutil.copyfile(log_file, base / "postgresql.log")
            shutil.rmtree(cluster, ignore_errors=True)


def _major_version(name: str) -> tuple[int, ...] | None:
    if not re.fullmatch(r"\d+(\.\d+)*", name):
        return None
    return tuple(int(part) for part in name.split("."))


def _has_server_tools(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / tool, os.X_OK) for tool in ("initdb", "pg_ctl"))


def _service_user() -> pwd.struct_passwd:
    """The unprivileged user the server runs as when we are root; created on first use."""
    with suppress(KeyError):
        return pwd.getpwnam(SERVICE_USER)
    nologin = shutil.which("nologin") or "/usr/sbin/nologin"
    result = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", nologin, SERVICE_USER],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        # Look again rather than trust the exit code: a parallel session may have won the race.
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise PostgresError(
            f"could not create the system user {SERVICE_USER} that runs PostgreSQL "
            f"(PostgreSQL refuses to run as root): {result.stderr.strip()}"
        ) from None


def _check_socket_path(socket_dir: Path) -> None:
    longest = socket_dir / ".s.PGSQL.65535.lock"
    if len(os.fsencode(longest)) > MAX_SOCKET_PATH:
        raise PostgresError(
            f"the temp folder {socket_dir} is too long for a unix socket path "
            f"(limit {MAX_SOCKET_PATH} bytes); set TMPDIR to a shorter folder"
        )


def _initdb_locale() -> str:
    """C.UTF-8 where the C library has it (UTF-8 aware case mapping), plain C otherwise."""
    saved = locale.setlocale(locale.LC_CTYPE)
    try:
        locale.setlocale(locale.LC_CTYPE, "C.UTF-8")
    except locale.Error:
        return "C"
    finally:
        locale.setlocale(locale.LC_CTYPE, saved)
    return "C.UTF-8"


def _initdb(
    bin_dir: Path, data_dir: Path, cwd: Path, password: str, run_as: pwd.struct_passwd | None
) -> None:
    pwfile = cwd / "pwfile"
    # Created 0600 before the secret goes in; only initdb (maybe as the service user) reads it.
    pwfile.touch(mode=0o600)
    if run_as is not None:
        os.chown(pwfile, run_as.pw_uid, run_as.pw_gid)
    pwfile.write_text(password + "\n")
    try:
        _run(
            [
                str(bin_dir / "initdb"),
                "--pgdata",
                str(data_dir),
                "--username",
                SUPERUSER,
                "--pwfile",
                str(pwfile),
                "--auth",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--locale",
                _initdb_locale(),
                "--no-sync",  # nothing here needs to survive a power cut
            ],
            cwd=cwd,
            run_as=run_as,
            what="initdb",
        )
    finally:
        pwfile.unlink(missing_ok=True)


def _write_settings(data_dir: Path, socket_dir: Path) -> None:
    quoted_socket_dir = str(socket_dir).replace("'", "''")
    settings = f"""
# --- karmayogi test cluster ---
listen_addresses = '{HOST}'
unix_socket_directories = '{quoted_socket_dir}'
# Durability is traded for speed: a test cluster is thrown away, never recovered after a
# crash, so it need not flush to disk on commit or guard against torn pages.
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 32MB
"""
    with (data_dir / "postgresql.conf").open("a") as conf:
        conf.write(settings)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
        return False


def _start(
    bin_dir: Path, data_dir: Path, log_file: Path, cwd: Path, run_as: pwd.struct_passwd | None
) -> int:
    """Start the server on a free port; returns the port. Retries when the port was taken."""
    for _attempt in range(START_ATTEMPTS):
        port = _free_port()
        result = _run(
            [
                str(bin_dir / "pg_ctl"),
                "start",
                "--pgdata",
                str(data_dir),
                "--log",
                str(log_file),
                "--wait",
                "--timeout",
                "60",
                "--options",
                f"-p {port}",
            ],
            cwd=cwd,
            run_as=run_as,
            what="pg_ctl start",
            check=False,
        )
        if result.returncode == 0:
            return port
        # Between our probe and the server's bind someone else may have taken the port: then
        # try another one. Any other failure is real and is reported with the server's log.
        if (data_dir / "postmaster.pid").exists() or not _port_taken(port):
            break
    raise PostgresError(
        f"PostgreSQL did not start (pg_ctl said: {result.stdout.strip()} {result.stderr.strip()})"
        f"\n--- last lines of the server log ---\n{_tail(log_file)}"
    )


def _stop(bin_dir: Path, data_dir: Path, cwd: Path, run_as: pwd.struct_passwd | None) -> None:
    pg_ctl = str(bin_dir / "pg_ctl")
    stop = [pg_ctl, "stop", "--pgdata", str(data_dir), "--wait", "--timeout", "30"]
    result = _run(
        [*stop, "--mode", "fast"], cwd=cwd, run_as=run_as, what="pg_ctl stop", check=False
    )
    if result.returncode != 0:
        # A fast shutdown waits for nothing but can still hang on a stuck backend.
        _run([*stop, "--mode", "immediate"], cwd=cwd, run_as=run_as, what="pg_ctl stop")


def _run(
    command: Sequence[str],
    *,
    cwd: Path,
    run_as: pwd.struct_passwd | None,
    what: str,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    if run_as is not None:
        command = ["runuser", "-u", run_as.pw_name, "--", *command]
    # PG* variables of the caller (PGDATA, PGPORT, ...) must not steer the private cluster.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    try:
        result = subprocess.run(
            list(command),
            cwd=cwd,  # the service user may not be allowed into the caller's working directory
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise PostgresError(f"{what} did not finish in {COMMAND_TIMEOUT:.0f}s") from exc
    except FileNotFoundError as exc:
        raise PostgresError(f"{what}: cannot run {command[0]}: {exc.strerror}") from exc
    if check and result.returncode != 0:
        raise PostgresError(
            f"{what} failed with exit code {result.returncode}:\n{result.stdout}{result.stderr}"
        )
    return result


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log written)"
