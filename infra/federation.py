"""Federation on the local target: one-off syncs, their status, and the periodic syncer.

Each sync runs the portal's own ``federation_sync`` in that portal's environment, so the kit
never holds a database connection or a token itself. ``karmayogi up`` runs one round (the hub
pulls the tenants that publish, then every tenant pulls the hub) and starts the *syncer*, a
small process that repeats the round every ``KARMAYOGI_SYNC_SECONDS`` (default 60) until
``karmayogi down`` stops it by its PID. Production targets run the same command as a
scheduled job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from infra.errors import KitError
from infra.home import KitHome, read_json, write_private_json
from infra.portals import log_path, portal_run_env
from infra.processes import pid_alive, stop_process_group
from infra.render import portal_data_dir, portal_env_path
from infra.spec import TenantSpec

SYNCER_MARKER = "infra.federation"
DEFAULT_INTERVAL = 60


class FederationError(KitError):
    pass


def _manage(code: str, home: KitHome, env: dict[str, str], *args: str) -> tuple[int, str]:
    env_file = portal_env_path(code, home)
    if not env_file.is_file():
        raise FederationError(f"{code}: the portal has not been set up yet; run `karmayogi up`")
    done = subprocess.run(
        [sys.executable, "-m", "tenant_portal.manage", *args],
        env=portal_run_env(env_file, env),
        cwd=portal_data_dir(code, home),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    return done.returncode, (done.stdout + done.stderr).strip()


def sync_tenant(code: str, home: KitHome, env: dict[str, str]) -> str:
    """Pull every peer of ``code`` once; its report, or :class:`FederationError`."""
    status, output = _manage(code, home, env, "federation_sync")
    if status != 0:
        raise FederationError(
            f"{code}: sync failed: {output.splitlines()[-1] if output else status}"
        )
    return output


def sync_order(specs: Sequence[TenantSpec]) -> list[str]:
    """The hub first (it gathers what tenants publish), then every tenant."""
    return [s.code for s in sorted(specs, key=lambda s: (not s.is_hub, s.code))]


def sync_round(specs: Sequence[TenantSpec], home: KitHome, env: dict[str, str]) -> dict[str, str]:
    """One sync of every instance; per tenant its report or its error (never raises)."""
    results = {}
    for code in sync_order(specs):
        try:
            results[code] = sync_tenant(code, home, env)
        except FederationError as exc:
            results[code] = f"error: {exc}"
    return results


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
    with log.open("ab") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", SYNCER_MARKER, str(tenants)],
            env={**env, "KARMAYOGI_HOME": str(home.root)},
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    write_private_json(_syncer_state(home), {"pid": process.pid})
    return process.pid


def stop_syncer(home: KitHome) -> bool:
    pid = syncer_pid(home)
    if pid is None:
        return False
    stop_process_group(pid, timeout=10)
    return True


def _run_forever(tenants: Path) -> None:  # pragma: no cover - exercised through `up`
    from infra.spec import load_specs

    env = dict(os.environ)
    home = KitHome.from_env(env)
    interval = int(env.get("KARMAYOGI_SYNC_SECONDS") or DEFAULT_INTERVAL)
    while True:
        specs = load_specs([tenants])
        for code, report in sync_round(specs, home, env).items():
            line = " | ".join(report.splitlines()) or "nothing to do"
            print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {code}: {line}", flush=True)
        time.sleep(interval)


if __name__ == "__main__":  # pragma: no cover
    _run_forever(Path(sys.argv[1]))
