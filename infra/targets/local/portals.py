"""The local target's portals: one gunicorn process per tenant on its own loopback address.

Each portal runs the same code with its own rendered environment (a 0600 JSON file), its own
SQLite database and static files under the kit's home, and its own log. Processes are
started in their own session and stopped by PID, like Keycloak, with umask 077: the logs,
databases (and SQLite's ``-wal``/``-shm`` files) and static files they write are 0600 in 0700
folders. The access log names the path of each request without its query string, which on
``/auth/callback/`` holds a one-time authorisation code.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx

from infra.errors import KitError
from infra.home import (
    PRIVATE_UMASK,
    KitHome,
    copy_private,
    make_private,
    make_private_dir,
    open_private_log,
    read_json,
    write_private_json,
    write_private_text,
)
from infra.spec import TenantSpec
from infra.targets.local.processes import (
    pid_alive,
    session_leaders_naming,
    spawn,
    stop_process_group,
    tail,
    wait_for_http,
)
from infra.targets.local.render import (
    first_local_address,
    local_endpoints,
    portal_data_dir,
    portal_env_path,
    shared_static_root,
    write_portal_env,
)

START_TIMEOUT = 60.0
# One worker with threads: measured after `make up`, a portal's worker holds about 125 MB
# resident and gunicorn's master 27 MB; each extra worker process would add another 125 MB.
GUNICORN_THREADS = 4
# Gunicorn's default access log line without the query string (``%(r)s`` holds it, and on
# /auth/callback/ it carries the one-time code and state) and without the referrer (which
# can hold another page's query string): method, path and protocol, status, size, agent.
ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s"'


class PortalError(KitError):
    """A portal could not be prepared or started; the message carries its log's tail."""


@dataclass(frozen=True)
class PortalStatus:
    code: str
    url: str | None
    pid: int | None
    healthy: bool


def _state_path(code: str, home: KitHome) -> Path:
    return portal_data_dir(code, home) / "state.json"


def portal_state(code: str, home: KitHome) -> dict[str, Any]:
    """What the kit remembers of a portal: its PID, what it was prepared from, seeded."""
    return read_json(_state_path(code, home)) or {}


def update_portal_state(code: str, home: KitHome, **changes: Any) -> None:
    write_private_json(_state_path(code, home), {**portal_state(code, home), **changes})


@cache
def code_fingerprint() -> str:
    """A digest of the portal's code, templates, static files and data (names, sizes, mtimes):
    preparing a portal again is needed only when this or its rendered settings change."""
    package = Path(__file__).resolve().parents[1] / "tenant_portal"
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".mo"):  # compiled from the .po files, rewritten by every build
                continue
            stat = os.stat(os.path.join(folder, name))
            digest.update(f"{folder}/{name}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def prepare_stamp(env_file: Path) -> str:
    return hashlib.sha256(env_file.read_bytes() + code_fingerprint().encode()).hexdigest()


# --- work every portal shares -----------------------------------------------------------------
# Every local portal runs the same code, so two costly parts of preparing one are done once per
# version of that code: collecting static files (into one folder all portals serve from), and
# migrating an empty database, which a new portal then starts from as a copy. Wagtail's
# migrations write the first language's locale, so there is one such database per first
# language. A portal's own `prepare_portal` then has only its site, branding and framework to do.


def _static_marker(home: KitHome) -> Path:
    return shared_static_root(home) / ".karmayogi-code"


def static_current(home: KitHome) -> bool:
    marker = _static_marker(home)
    return marker.is_file() and marker.read_text(encoding="utf-8") == code_fingerprint()


def _narrow_static(home: KitHome) -> None:
    # Django's storage sets every file it saves to FILE_UPLOAD_PERMISSIONS (0644 by default)
    # whatever the umask; the kit's folder holds them as it holds the rest.
    make_private(shared_static_root(home))


def template_database(home: KitHome, language: str) -> Path:
    return home.root / "cache" / f"portal-{code_fingerprint()[:16]}-{language}.sqlite3"


def _database(code: str, home: KitHome) -> Path:
    return portal_data_dir(code, home) / "portal.sqlite3"


def prepare_shared(
    specs: Sequence[TenantSpec],
    home: KitHome,
    keycloak_url: str,
    env: dict[str, str],
    progress: Callable[[str], None] = lambda _: None,
) -> list[str]:
    """Collect static files and migrate template databases, where this code version has not
    yet; side by side. What was done, by name."""
    new = [
        s
        for s in specs
        if running_pid(s.code, home) is None and not _database(s.code, home).exists()
    ]
    by_language = {s.spec.languages[0]: s for s in new}
    jobs: list[tuple[str, TenantSpec, str | None]] = []
    if specs and not static_current(home):
        jobs.append(("static files", specs[0], None))
    for language, spec in sorted(by_language.items()):
        if not template_database(home, language).is_file():
            jobs.append((f"empty database ({language})", spec, language))

    def run(job: tuple[str, TenantSpec, str | None]) -> str:
        name, spec, language = job
        progress(f"portals: {name}, once for every portal of this code version")
        run_env = portal_run_env(write_portal_env(spec, specs, home, keycloak_url), env)
        if language is None:
            manage(spec.code, home, run_env, "collectstatic", "--noinput", "-v0", doing=name)
            _narrow_static(home)
            write_private_text(_static_marker(home), code_fingerprint())
            return name
        target = template_database(home, language)
        make_private_dir(target.parent)
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            database = Path(scratch) / "portal.sqlite3"
            run_env = {**run_env, "DATABASE_URL": f"sqlite:///{database}"}
            run_env["KARMAYOGI_DATA_DIR"] = scratch
            manage(spec.code, home, run_env, "migrate", "--noinput", "-v0", doing=name)
            for old in target.parent.glob(f"portal-*-{language}.sqlite3"):
                old.unlink()
            os.replace(database, target)
        return name

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(run, jobs))


def log_path(code: str, home: KitHome) -> Path:
    return home.logs / f"{code}.log"


def portal_run_env(env_file: Path, base_env: dict[str, str]) -> dict[str, str]:
    # The portal reads its configuration from the rendered file, not from the operator's shell.
    keep = {k: v for k, v in base_env.items() if not k.startswith(("KARMAYOGI_", "DJANGO_"))}
    keep["KARMAYOGI_ENV_FILE"] = str(env_file)
    keep["DJANGO_SETTINGS_MODULE"] = "tenant_portal.settings.dev"
    return keep


def manage(code: str, home: KitHome, run_env: dict[str, str], *args: str, doing: str) -> None:
    """Run a portal management command in the portal's environment and data folder; its
    output goes to the portal's log, and a failure raises :class:`PortalError` with its tail."""
    data_dir = portal_data_dir(code, home)
    make_private_dir(data_dir)
    log = log_path(code, home)
    with open_private_log(log) as handle:
        done = subprocess.run(
            [sys.executable, "-m", "tenant_portal.manage", *args],
            env=run_env,
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=False,
            umask=PRIVATE_UMASK,
        )
    if done.returncode != 0:
        failed = f"{code}: {doing} failed (exit {done.returncode})"
        raise PortalError(f"{failed}; see {log}:\n{tail(log)}")


def seed_portal(code: str, home: KitHome, env: dict[str, str], *, if_empty: bool) -> None:
    """Fill the portal with its demo courses (``seed_courses``); needs a prepared portal."""
    env_file = portal_env_path(code, home)
    if not env_file.is_file():
        raise PortalError(f"{code}: the portal has not been set up yet; run `karmayogi up` first")
    args = ["seed_courses", "--if-empty"] if if_empty else ["seed_courses"]
    manage(code, home, portal_run_env(env_file, env), *args, doing="seeding demo courses")
    update_portal_state(code, home, seeded=True)


def seeded(code: str, home: KitHome) -> bool:
    """Whether ``up`` has seeded the portal to the end (an interrupted seed runs again; it
    skips the courses already there)."""
    return bool(portal_state(code, home).get("seeded"))


def running_pid(code: str, home: KitHome) -> int | None:
    pid = portal_state(code, home).get("pid")
    if isinstance(pid, int) and pid_alive(pid, f"--name=karmayogi-{code} "):
        return pid
    return None


def portal_status(spec: TenantSpec, specs: list[TenantSpec], home: KitHome) -> PortalStatus:
    pid = running_pid(spec.code, home)
    if pid is None:
        return PortalStatus(spec.code, None, None, False)
    url = local_endpoints(specs, home)[spec.code].url
    try:
        healthy = httpx.get(f"{url}/healthz", timeout=3.0).status_code == 200
    except httpx.HTTPError:
        healthy = False
    return PortalStatus(spec.code, url, pid, healthy)


def start_portal(
    spec: TenantSpec,
    specs: list[TenantSpec],
    home: KitHome,
    keycloak_url: str,
    env: dict[str, str],
) -> PortalStatus:
    """Render, prepare and start the tenant's portal; wait until it answers. Idempotent.

    Preparing (migrations, static files, branding, the competency framework) is skipped when
    neither the portal's code nor its rendered settings changed since the last time, which is
    most of what makes a second ``up`` fast. A running portal keeps running: its rendered
    settings file is rewritten, and the management commands the kit runs read it afresh.
    """
    home.create()
    # Settled before the render, which names the portal's URL.
    endpoint = local_endpoints(specs, home, first_local_address(env))[spec.code]
    env_file = write_portal_env(spec, specs, home, keycloak_url)
    run_env = portal_run_env(env_file, env)
    log = log_path(spec.code, home)
    if running_pid(spec.code, home) is None:
        # What a kit before umask 077 left readable by others: the database, its media.
        make_private(portal_data_dir(spec.code, home))
        stamp = prepare_stamp(env_file)
        if portal_state(spec.code, home).get("prepared") != stamp:
            database = _database(spec.code, home)
            template = template_database(home, spec.spec.languages[0])
            if not database.exists() and template.is_file():
                copy_private(template, database)
            collect = not static_current(home)
            args = ["prepare_portal", "-v0", *([] if collect else ["--skip-static"])]
            manage(spec.code, home, run_env, *args, doing="preparing the portal")
            if collect:
                _narrow_static(home)
            update_portal_state(spec.code, home, prepared=stamp)
        name, bind = f"--name=karmayogi-{spec.code} ", f"--bind={endpoint.host}:{endpoint.port}"
        # A portal of ours that no state file names (its `up` was killed outright, or the
        # state was lost) would keep the port and answer for a new one that cannot bind.
        for orphan in session_leaders_naming(name, f"{bind} "):
            stop_process_group(orphan, timeout=15.0)
        process = spawn(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "tenant_portal.wsgi:application",
                name.strip(),
                bind,
                "--workers=1",
                f"--threads={GUNICORN_THREADS}",
                "--access-logfile=-",
                f"--access-logformat={ACCESS_LOG_FORMAT}",
                "--error-logfile=-",
                "--graceful-timeout=5",
                # Gunicorn's control socket is one path per user; portals are run by signal.
                "--no-control-socket",
            ],
            log,
            lambda pid: update_portal_state(spec.code, home, pid=pid),
            env=run_env,
        )
        wait_for_http(
            f"{endpoint.url}/healthz",
            name=f"{spec.code}: the portal",
            log=log,
            timeout=START_TIMEOUT,
            process=process,
            error=PortalError,
        )
    return portal_status(spec, specs, home)


def stop_portal(code: str, home: KitHome) -> bool:
    """Stop the tenant's portal by PID; True if it was running. Its data is kept."""
    pid = running_pid(code, home)
    if pid is None:
        return False
    stop_process_group(pid, timeout=15.0)
    update_portal_state(code, home, pid=None)
    return True


def known_portals(home: KitHome) -> list[str]:
    """Codes of every portal this home has run, whether or not its spec is still around."""
    folder = home.root / "portals"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
