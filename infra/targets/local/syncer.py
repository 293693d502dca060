"""The periodic syncer of the local target: a sync round every ``KARMAYOGI_SYNC_SECONDS``.

Started by ``karmayogi up`` as ``python -m infra.targets.local.syncer <tenants folder>`` and
stopped by ``karmayogi down`` (``infra.targets.local.federation``); a module of its own, so
running it imports nothing twice.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from infra.home import KitHome
from infra.targets.local.federation import DEFAULT_INTERVAL, sync_round


def run_forever(tenants: Path) -> None:  # pragma: no cover - exercised through `up`
    from infra.spec import SpecError, load_specs

    env = dict(os.environ)
    home = KitHome.from_env(env)
    interval = int(env.get("KARMAYOGI_SYNC_SECONDS") or DEFAULT_INTERVAL)
    while True:
        began = time.monotonic()
        try:
            specs = load_specs([tenants])
        except SpecError as exc:  # a spec being edited: skip this round, say why
            print(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} specs: {exc}", flush=True)
            time.sleep(interval)
            continue
        for code, report in sync_round(specs, home, env).items():
            line = " | ".join(report.splitlines()) or "nothing to do"
            print(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {code}: {line}", flush=True)
        # Rounds start every `interval` seconds, however long one takes.
        time.sleep(max(1.0, interval - (time.monotonic() - began)))


if __name__ == "__main__":  # pragma: no cover
    run_forever(Path(sys.argv[1]))
