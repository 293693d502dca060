"""Realm benchmarks, printed side by side with their references (run by `make bench`).

1. One new tenant realm applied by the reconciler vs one raw ``POST /admin/realms`` carrying
   the same full representation (exported from a realm the reconciler made). Goal: within 2x.
2. A no-op re-apply of every example tenant. Goal: under 1 s.
3. 60 tenant realms applied: the total, and p95 of a realm read through the admin API
   (goal: under 200 ms), with the same read on a Keycloak holding only the examples.

It starts its own Keycloak under a temporary kit home (sharing the download cache) and stops
it at the end, so it never touches a running federation. Figures are medians of repeats;
these machines are noisy, so every comparison is made in the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from identity.admin import AdminAPI  # noqa: E402
from identity.desired import Federation, TenantRealm  # noqa: E402
from identity.reconciler import Reconciler  # noqa: E402
from infra.home import KitHome  # noqa: E402
from infra.spec import load_specs  # noqa: E402
from infra.targets.local.keycloak import LocalKeycloak  # noqa: E402
from infra.targets.local.render import local_federation  # noqa: E402
from infra.targets.local.runtime import admin_api, reconciler_for  # noqa: E402


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def row(label: str, value: str, reference: str = "", note: str = "") -> None:
    print(f"  {label:<46} {value:>14}   {reference:<22} {note}")


def strip_ids(value: Any) -> Any:
    """An exported representation ready to POST as a new realm (ids are Keycloak's to mint)."""
    if isinstance(value, dict):
        return {
            k: strip_ids(v)
            for k, v in value.items()
            if k not in ("id", "containerId", "internalId")
        }
    if isinstance(value, list):
        return [strip_ids(v) for v in value]
    return value


def exported(api: AdminAPI, realm: str, new_name: str) -> dict[str, Any]:
    rep = strip_ids(api.export_realm(realm))
    rep["realm"] = new_name
    return dict(rep)


def variant(base: TenantRealm, code: str) -> TenantRealm:
    return dataclasses.replace(base, code=code, login_theme=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--realms", type=int, default=60)
    args = parser.parse_args()

    env = dict(os.environ)
    cache = KitHome.from_env(env).cache
    with tempfile.TemporaryDirectory(prefix="karmayogi-bench-") as tmp:
        home = KitHome(root=Path(tmp), cache=cache)
        kc = LocalKeycloak(home, env)
        print(f"Starting Keycloak {kc.paths.version} for the benchmark ...", flush=True)
        kc.start()
        try:
            run(kc, home, args.repeats, args.realms)
        finally:
            kc.stop()


def run(kc: LocalKeycloak, home: KitHome, repeats: int, count: int) -> None:
    specs = load_specs([ROOT / "tenants"])
    reconciler_for(specs, kc).apply()  # the example federation, as `make up` leaves it
    federation = local_federation(specs, home, kc.url)
    hub = federation.hub
    template = next(t for t in federation.tenants if t.broker_to_hub)
    print(f"Keycloak {kc.paths.version}, {len(specs)} example tenants applied.\n")

    # 1. One new realm: reconciler vs raw POST of the same full representation.
    api = admin_api(kc)
    reconciled: list[float] = []
    raw: list[float] = []
    requests: list[int] = []
    for i in range(repeats):
        tenant = variant(template, f"bench-one-{i}")
        fed = Federation(kc.url, (*federation.tenants, tenant), hub)
        rec = Reconciler(admin_api(kc), fed)
        reconciled.append(timed(lambda rec=rec, code=tenant.code: rec.apply([code])))
        requests.append(sum(rec.api.requests.values()))
        rep = exported(api, tenant.code, f"bench-raw-{i}")
        raw.append(timed(lambda rep=rep: api.post("", rep, "raw realm")))
    for i in range(repeats):
        api.delete(f"/bench-raw-{i}", "cleanup")
        Reconciler(api, federation).destroy(f"bench-one-{i}", hub.code if hub else None)
    r_med, b_med = statistics.median(reconciled), statistics.median(raw)
    print("1. One new tenant realm (median of", repeats, "runs)")
    row(
        "reconciler apply (realm, flows, IdP, hub clients)",
        ms(r_med),
        f"raw POST {ms(b_med)}",
        f"ratio {r_med / b_med:.2f}x (goal <= 2x)",
    )
    row("requests per apply", f"{statistics.median(requests):.0f}", "raw POST 1")

    # 2. No-op re-apply of every example tenant.
    noop: list[float] = []
    writes: list[int] = []
    for _ in range(repeats):
        rec = reconciler_for(specs, kc)
        noop.append(timed(rec.apply))
        writes.append(rec.api.writes)
    print("\n2. No-op re-apply of the example tenants (median of", repeats, "runs)")
    row(
        f"apply, {len(specs)} tenants, nothing to change",
        ms(statistics.median(noop)),
        "goal < 1000 ms",
        f"write requests: {max(writes)}",
    )

    # 3. Many realms: total apply time, and realm reads at that size vs at the start.
    def read_p95(codes: list[str]) -> float:
        samples = []
        for _ in range(5):
            for code in codes:
                samples.append(timed(lambda code=code: api.get(f"/{code}", "read")))
        return p95(samples)

    examples = [s.code for s in specs]
    before = read_p95(examples)
    tenants = tuple(variant(template, f"bench-{i:03d}") for i in range(count))
    fed = Federation(kc.url, (*federation.tenants, *tenants), hub)
    rec = Reconciler(admin_api(kc), fed)
    total = timed(lambda: rec.apply([t.code for t in tenants]))
    after = read_p95(examples + [t.code for t in tenants])
    print(f"\n3. {count} tenant realms applied")
    row(
        f"total apply of {count} realms",
        f"{total:8.1f} s",
        f"{total / count * 1000:.0f} ms per realm",
    )
    row(
        f"p95 realm read with {count + len(specs)} realms",
        ms(after),
        f"with {len(specs)} realms {ms(before)}",
        "goal < 200 ms",
    )
    started = time.perf_counter()
    for tenant in tenants:
        rec.destroy(tenant.code, hub.code if hub else None)
    print(f"\n(cleanup of {count} realms took {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
