"""How long `karmayogi up` takes to an all-healthy federation, and how much memory it holds.

Runs the real CLI on the example tenants in a kit home of its own (so it never touches the
operator's ~/.karmayogi): a cold `up` (Keycloak's release already downloaded, nothing else
there), `down`, then a warm `up` on the data the first one left. "All healthy" is `karmayogi
status` exiting 0: Keycloak, every portal, the syncer, and every peer synced without error.
Memory is the resident set of every process the federation runs (Keycloak's JVM, each
portal's gunicorn master and worker, the syncer), read from /proc after the warm start.

Goals from the issue: cold under 120 s, warm under 45 s, the whole federation under 3 GB RSS
on this 2-core machine. Reference point: Sunbird's installer asks for 48 vCPU and 192 GB
(Sunbird-Ed's documented server requirements), for one platform, not a federation of four.

    .venv/bin/python scripts/bench/up.py [--tenants tenants] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KARMAYOGI = str(Path(sys.executable).with_name("karmayogi"))
GOALS = {"cold": 120.0, "warm": 45.0, "rss_gb": 3.0}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KARMAYOGI, *args], env=env, capture_output=True, text=True, check=False, timeout=1800
    )


def to_all_healthy(env: dict[str, str], tenants: Path) -> float:
    started = time.monotonic()
    done = run(env, "up", "--tenants", str(tenants))
    if done.returncode != 0:
        sys.exit(f"up failed:\n{done.stderr[-3000:]}")
    while run(env, "status", "--tenants", str(tenants)).returncode != 0:
        if time.monotonic() - started > 900:
            sys.exit("the federation did not become healthy within 15 minutes")
        time.sleep(1)
    return time.monotonic() - started


def federation_rss(status: dict[str, object]) -> dict[str, int]:
    """Resident kB per component: every process in each started process group."""
    leaders: dict[int, str] = {}
    keycloak = status["keycloak"]
    assert isinstance(keycloak, dict)
    leaders[int(keycloak["pid"])] = "keycloak"
    syncer = status["syncer"]
    assert isinstance(syncer, dict)
    if syncer["pid"]:
        leaders[int(syncer["pid"])] = "syncer"
    tenants = status["tenants"]
    assert isinstance(tenants, list)
    for tenant in tenants:
        leaders[int(tenant["pid"])] = f"portal {tenant['code']}"
    totals = dict.fromkeys(leaders.values(), 0)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            rss = next(
                int(line.split()[1])
                for line in (proc / "status").read_text().splitlines()
                if line.startswith("VmRSS:")
            )
        except (OSError, StopIteration):
            continue
        group = int(fields[2])  # pgrp: each component leads its own group
        if group in leaders:
            totals[leaders[group]] += rss
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=Path, default=REPO / "tenants")
    parser.add_argument("--keep", action="store_true", help="Keep the bench's kit home.")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="karmayogi-bench-up-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KARMAYOGI_")}
    env["KARMAYOGI_HOME"] = str(root)
    if "KARMAYOGI_CACHE" in os.environ:
        env["KARMAYOGI_CACHE"] = os.environ["KARMAYOGI_CACHE"]
    try:
        if run(env, "keycloak", "install").returncode != 0:
            sys.exit("cannot install Keycloak (see `karmayogi keycloak install`)")
        cold = to_all_healthy(env, args.tenants)
        if run(env, "down").returncode != 0:
            sys.exit("down failed")
        warm = to_all_healthy(env, args.tenants)
        status = json.loads(run(env, "status", "--json", "--tenants", str(args.tenants)).stdout)
        rss = federation_rss(status)
    finally:
        run(env, "down")
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    total_gb = sum(rss.values()) / 1024 / 1024
    tenants = len(status["tenants"])
    print(f"karmayogi up, {tenants} tenants, {os.cpu_count()} cores")
    print(f"{'measure':<34} {'this run':>12} {'goal':>10} {'met':>5}")
    rows = [
        ("cold up to all healthy (s)", cold, GOALS["cold"]),
        ("warm up after down (s)", warm, GOALS["warm"]),
        ("federation resident memory (GB)", total_gb, GOALS["rss_gb"]),
    ]
    for name, value, goal in rows:
        print(f"{name:<34} {value:>12.1f} {goal:>10.1f} {'yes' if value < goal else 'NO':>5}")
    print("resident memory by component (MB):")
    for name, kb in sorted(rss.items()):
        print(f"  {name:<32} {kb / 1024:>8.0f}")
    print("reference: Sunbird's installer asks for 48 vCPU and 192 GB of memory")


if __name__ == "__main__":
    main()
