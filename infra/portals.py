"""The local target's portals: one gunicorn process per tenant on its own loopback address.

Each portal runs the same code with its own rendered environment (a 0600 JSON file), its own
SQLite database and static files under the kit's home, and its own log. Processes are
started in their own session and stopped by PID, like Keycloak.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from infra.errors import KitError
from infra.home import KitHome, read_json, write_private_json
from infra.processes import pid_alive, stop_process_group, tail, wait_for_http
from infra.render import local_endpoints, portal_data_dir, portal_env_path, write_portal_env
from infra.spec import TenantSpec

START_TIMEOUT = 60.0
# One worker with threads: measured after `make up`, a portal's worker holds about 125 MB
# resident and gunicorn's master 27 MB; each extra worker process would add another 125 MB.
GUNICORN_THREADS = 4


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
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log = log_path(code, home)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        done = subprocess.run(
            [sys.executable, "-m", "tenant_portal.manage", *args],
            env=run_env,
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=False,
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


def running_pid(code: str, home: KitHome) -> int | None:
    state = read_json(_state_path(code, home)) or {}
    pid = state.get("pid")
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
    """Render, prepare and start the tenant's portal; wait until it answers. Idempotent."""
    env_file = write_portal_env(spec, specs, home, keycloak_url)
    run_env = portal_run_env(env_file, env)
    log = log_path(spec.code, home)
    log.parent.mkdir(parents=True, exist_ok=True)
    if running_pid(spec.code, home) is None:
        manage(spec.code, home, run_env, "prepare_portal", "-v0", doing="preparing the portal")
        endpoint = local_endpoints(specs, home)[spec.code]
        with log.open("ab") as handle:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "tenant_portal.wsgi:application",
                    f"--name=karmayogi-{spec.code}",
                    f"--bind={endpoint.host}:{endpoint.port}",
                    "--workers=1",
                    f"--threads={GUNICORN_THREADS}",
                    "--access-logfile=-",
                    "--error-logfile=-",
                    "--graceful-timeout=5",
                ],
                env=run_env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        write_private_json(_state_path(spec.code, home), {"pid": process.pid})
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
    write_private_json(_state_path(code, home), {})
    return True


def known_portals(home: KitHome) -> list[str]:
    """Codes of every portal this home has run, whether or not its spec is still around."""
    folder = home.root / "portals"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
