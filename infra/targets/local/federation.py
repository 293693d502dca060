"""Federation on the local target: one-off syncs, their status, and the periodic syncer.

Each sync runs the portal's own ``federation_sync`` in that portal's environment, so the kit
never holds a database connection or a token itself. ``karmayogi up`` runs one round (the hub
pulls the tenants that publish, then every tenant pulls the hub; after its sync each instance
delivers its xAPI outbox to the hub with ``xapi_deliver``) and starts the *syncer*, a small
process that repeats the round every ``KARMAYOGI_SYNC_SECONDS`` (default 60) until ``karmayogi
down`` stops it by its PID. Production targets run the same commands as scheduled jobs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from infra.errors import KitError
from infra.home import PRIVATE_UMASK, KitHome, read_json, write_private_json
from infra.spec import TenantSpec
from infra.targets.local.portals import log_path, portal_run_env
from infra.targets.local.processes import pid_alive, spawn, stop_process_group
from infra.targets.local.render import portal_data_dir, portal_env_path

# The syncer runs as `python -m infra.targets.local.syncer`: its PID is recognised by that.
SYNCER_MARKER = "infra.targets.local.syncer"
# Tenants synced at once in a round: each is a short-lived management command, mostly waiting
# on HTTP and SQLite, so two per core keep a 2-core machine busy without thrashing.
ROUND_WORKERS = 4
DEFAULT_INTERVAL = 60


class FederationError(KitError):
    pass


def _run_manage(
    code: str, home: KitHome, env: dict[str, str], args: Sequence[str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env_file = portal_env_path(code, home)
    if not env_file.is_file():
        raise FederationError(f"{code}: the portal has not been set up yet; run `karmayogi up`")
    return subprocess.run(
        [sys.executable, "-m", "tenant_portal.manage", *args],
        env=portal_run_env(env_file, env),
        cwd=portal_data_dir(code, home),
        # Secrets go to a command on its standard input, never on its command line.
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
        # SQLite's -wal and -shm files, made by whichever process opens the database first.
        umask=PRIVATE_UMASK,
    )


def _manage(code: str, home: KitHome, env: dict[str, str], *args: str) -> tuple[int, str]:
    done = _run_manage(code, home, env, args)
    return done.returncode, (done.stdout + done.stderr).strip()


def manage_output(
    code: str,
    home: KitHome,
    env: dict[str, str],
    *args: str,
    stdin: str | None = None,
    about: str | None = None,
) -> str:
    """The standard output of a management command of ``code``'s portal; its one-line
    refusal (the last line it wrote on stderr) as :class:`FederationError` when it fails,
    prefixed with ``about`` (what was at fault, such as a file) or the tenant's code."""
    done = _run_manage(code, home, env, args, stdin)
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip()).splitlines()
        reason = lines[-1].removeprefix("CommandError: ") if lines else f"exit {done.returncode}"
        raise FederationError(f"{about or code}: {reason}")
    return done.stdout


def _checked(code: str, home: KitHome, env: dict[str, str], doing: str, *args: str) -> str:
    """A management command's report, or :class:`FederationError` naming what failed."""
    status, output = _manage(code, home, env, *args)
    if status != 0:
        last = output.splitlines()[-1] if output else status
        raise FederationError(f"{code}: {doing} failed: {last}")
    return output


def sync_tenant(code: str, home: KitHome, env: dict[str, str]) -> str:
    """Pull every peer of ``code`` once; its report, or :class:`FederationError`."""
    return _checked(code, home, env, "sync", "federation_sync")


def pull_packages(code: str, home: KitHome, env: dict[str, str]) -> str:
    """Pull the content packages of ``code``'s courses from elsewhere (a tenant: from the hub;
    the hub: from each publishing tenant), so they are learned on its own portal; its report,
    or :class:`FederationError`."""
    return _checked(code, home, env, "package pull", "federation_packages")


def deliver_statements(code: str, home: KitHome, env: dict[str, str], *, now: bool = False) -> str:
    """Send ``code``'s due xAPI statements (course completions) to the hub (with ``now``,
    also those waiting out a retry's backoff); its report, or :class:`FederationError`."""
    return _checked(code, home, env, "xAPI delivery", "xapi_deliver", *(["--now"] if now else []))


def check_credentials(code: str, home: KitHome, env: dict[str, str]) -> str:
    """Read again the issuers' status lists of the credentials ``code``'s officers imported
    (a revoked one is marked so); its report, or :class:`FederationError`."""
    return _checked(code, home, env, "credential check", "check_credentials")


def sync_order(specs: Sequence[TenantSpec]) -> list[str]:
    """The hub first (it gathers what tenants publish), then every tenant."""
    return [s.code for s in sorted(specs, key=lambda s: (not s.is_hub, s.code))]


def sync_round(specs: Sequence[TenantSpec], home: KitHome, env: dict[str, str]) -> dict[str, str]:
    """One sync of every instance, its pull of content packages, its xAPI delivery to the hub,
    then its check of imported credentials; per tenant its reports or errors, one a line
    (never raises)."""

    def one(code: str) -> str:
        reports = []
        for step in (sync_tenant, pull_packages, deliver_statements, check_credentials):
            try:
                reports.append(step(code, home, env))
            except FederationError as exc:
                reports.append(f"error: {exc}")
        return "\n".join(reports)

    order = sync_order(specs)
    hubs = [s.code for s in specs if s.is_hub]
    results = {code: one(code) for code in hubs}
    # The tenants pull the hub independently of each other: side by side.
    with ThreadPoolExecutor(max_workers=ROUND_WORKERS) as pool:
        rest = [code for code in order if code not in results]
        results.update(zip(rest, pool.map(one, rest), strict=True))
    return {code: results[code] for code in order}


def federation_status(code: str, home: KitHome, env: dict[str, str]) -> dict[str, Any]:
    status, output = _manage(code, home, env, "federation_status", "--json")
    if status != 0:
        raise FederationError(f"{code}: cannot read its federation status: {output[-300:]}")
    return dict(json.loads(output.splitlines()[-1]))


# --- the periodic syncer --------------------------------------------------------------------


def _syncer_state(home: KitHome) -> Path:
    return home.root / "federation-syncer.json"


def syncer_pid(home: KitHome) -> int | None:
    state = read_json(_syncer_state(home)) or {}
    pid = state.get("pid")
    return pid if isinstance(pid, int) and pid_alive(pid, SYNCER_MARKER) else None


def start_syncer(tenants: Path, home: KitHome, env: dict[str, str]) -> int:
    """Start the syncer unless it runs; its PID."""
    running = syncer_pid(home)
    if running is not None:
        return running
    log = log_path("federation", home)
    log.parent.mkdir(parents=True, exist_ok=True)
    process = spawn(
        [sys.executable, "-m", SYNCER_MARKER, str(tenants)],
        log,
        lambda pid: write_private_json(_syncer_state(home), {"pid": pid}),
        env={**env, "KARMAYOGI_HOME": str(home.root)},
    )
    return process.pid


def stop_syncer(home: KitHome) -> bool:
    pid = syncer_pid(home)
    if pid is None:
        return False
    stop_process_group(pid, timeout=10)
    return True
