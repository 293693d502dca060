"""What `karmayogi status` reports for a vm deployment, read on one host.

Run there as root from the current release (``python -m infra.targets.vm.hoststatus``; the
controller runs it through Ansible with the inventory's own connection settings). It reads
systemd and the portals' health endpoints on loopback, changes nothing, and prints one JSON
object::

    {"host": "app1", "healthy": true,
     "services": {"keycloak": {...}, "nginx": {...}, "postgresql": {...}},
     "keycloak_ready": true,
     "tenants": [{"code": "bihar", "portal": {...}, "healthy": true,
                  "sync": {...}, "xapi": {...}}],
     "backup": {...}}

where each unit is ``{"unit", "active", "result", "last_run"}`` as systemd tells it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

PORTAL_CONFIG = Path("/etc/karmayogi/portal")
KEYCLOAK_HEALTH = "http://127.0.0.1:9000/health/ready"


def unit_state(unit: str) -> dict[str, Any]:
    """A unit's state from ``systemctl show``: active or not, its last result and run."""
    done = subprocess.run(
        [
            "systemctl",
            "show",
            unit,
            "--property=LoadState,ActiveState,SubState,Result,ExecMainExitTimestamp",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    shown = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return {
        "unit": unit,
        "installed": shown.get("LoadState") == "loaded",
        "active": shown.get("ActiveState") == "active",
        "state": f"{shown.get('ActiveState', '?')} ({shown.get('SubState', '?')})",
        "result": shown.get("Result") or None,
        "last_run": shown.get("ExecMainExitTimestamp") or None,
    }


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def portal_port(code: str) -> int | None:
    try:
        text = (PORTAL_CONFIG / code / "unit.env").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("PORTAL_PORT="):
            return int(line.split("=", 1)[1])
    return None


def tenant_status(code: str) -> dict[str, Any]:
    portal = unit_state(f"karmayogi-portal@{code}.service")
    port = portal_port(code)
    healthy = portal["active"] and port is not None and answers(f"http://127.0.0.1:{port}/healthz")
    sync = unit_state(f"karmayogi-sync@{code}.service")
    xapi = unit_state(f"karmayogi-xapi@{code}.service")
    timers = {
        "sync_timer": unit_state(f"karmayogi-sync@{code}.timer")["active"],
        "xapi_timer": unit_state(f"karmayogi-xapi@{code}.timer")["active"],
    }
    # A sync that has never run yet is not a failure; one whose last run failed is.
    failed = [u["unit"] for u in (sync, xapi) if u["result"] not in (None, "success")]
    return {
        "code": code,
        "port": port,
        "portal": portal,
        "healthy": bool(healthy) and all(timers.values()) and not failed,
        "sync": sync,
        "xapi": xapi,
        **timers,
    }


def host_status() -> dict[str, Any]:
    codes = (
        sorted(p.name for p in PORTAL_CONFIG.iterdir() if p.is_dir())
        if PORTAL_CONFIG.is_dir()
        else []
    )
    services = {name: unit_state(f"{name}.service") for name in ("keycloak", "nginx", "postgresql")}
    tenants = [tenant_status(code) for code in codes]
    keycloak_ready = services["keycloak"]["active"] and answers(KEYCLOAK_HEALTH)
    backup = unit_state("karmayogi-backup.service") | {
        "timer": unit_state("karmayogi-backup.timer")["active"]
    }
    running = [s for s in services.values() if s["installed"]]
    healthy = (
        all(s["active"] for s in running)
        and (keycloak_ready or not services["keycloak"]["installed"])
        and all(t["healthy"] for t in tenants)
        and backup["result"] in (None, "success")
    )
    return {
        "host": socket.gethostname(),
        "healthy": healthy,
        "services": services,
        "keycloak_ready": keycloak_ready,
        "tenants": tenants,
        "backup": backup,
    }


def main() -> int:
    print(json.dumps(host_status()))
    return 0


if __name__ == "__main__":  # pragma: no cover - run on the host
    sys.exit(main())
