"""xAPI delivery from a backlog, batched beside one statement a request (run by `make bench`).

A tenant (``bihar``) owes the hub (``karmayogi-bharat``) a backlog of ``--backlog`` completion
statements (50,000 by default; ``--quick``: 5,000) in its outbox, and delivers them with
``xapi.delivery.deliver`` in its own process, in one run:

- (r) the reference: ``--sample`` statements (1,000; ``--quick``: 200) delivered one a request,
  ``PUT /xapi/statements?statementId=`` (``KARMAYOGI_XAPI_BATCH_SIZE=1``, how delivery worked
  before batches);
- (a) the backlog delivered in batches, ``POST /xapi/statements`` with an array of
  ``KARMAYOGI_XAPI_BATCH_SIZE`` statements (its default unless ``--batch``);
- (p) every delivered row pruned from the outbox (retention 0), as a run does once the
  retention has passed.

Goal: (a) at least 1,000 statements/s. Figures are reported, not asserted; what is asserted is
that each step did what it measures (every statement delivered and none rejected, the hub
holding each exactly once), else the run exits non-zero. Times are the delivery's, in its
process once Django has started.

The hub is served by gunicorn with the production settings on PostgreSQL, and checks every
request's token and its caller's membership as it does in a federation. As in the federation
benchmark, the hub realm's token endpoints are a stand-in issuer on loopback
(``federation_site/issuer.py``), which mints RS256 client-credentials tokens the portal's own
auth code checks as it checks Keycloak's.

It starts its own PostgreSQL, hub and issuer in a temporary folder, on loopback only, and stops
and removes them at the end, Ctrl-C included. All processes share the machine's cores: compare
the rows of one run with each other, never with another machine's.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH / "federation_site"))

from federation import (  # noqa: E402
    HUB,
    TENANT,
    Instance,
    create_database,
    instance,
    manage,
    row,
    run_command,
    verdict,
)
from issuer import TokenIssuer  # noqa: E402
from serving import HOST, THREADS, BenchError, gunicorn  # noqa: E402

from infra.net import free_port  # noqa: E402
from tests.postgres import PostgresError, running_postgres  # noqa: E402

WORKER = BENCH / "xapi_site" / "worker.py"
RATE_GOAL = 1000.0  # statements/s delivered from the backlog


def federation_config(code: str, issuer: str, secret: str, hub_url: str) -> dict[str, Any]:
    """The hub declares the tenant a member; the tenant sends to ``hubUrl``."""
    config: dict[str, Any] = {
        "code": code,
        "isHub": code == HUB,
        "hub": HUB,
        "hubIssuer": issuer,
        "hubUrl": hub_url,
        "clientId": f"federation-{code}",
        "clientSecret": secret,
    }
    if code == HUB:
        tenant_url = f"https://learn.{TENANT}.example"
        config["members"] = [
            {
                "code": TENANT,
                "name": TENANT,
                "tenantType": "state",
                "portalUrl": tenant_url,
                "keysUrl": f"{tenant_url}/federation/v1/keys",
            }
        ]
    return config


def step(tenant: Instance, name: str, *args: str, batch: int | None = None) -> dict[str, Any]:
    """Run a step of ``xapi_site/worker.py`` in its own process, as the tenant."""
    env = dict(tenant.env)
    if batch is not None:
        env["KARMAYOGI_XAPI_BATCH_SIZE"] = str(batch)
    portal = Instance(tenant.code, env, tenant.data_dir)
    stdout = run_command(portal, [sys.executable, str(WORKER), name, *args], f"the {name} step")
    try:
        result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise BenchError(f"the {name} step printed no result:\n{stdout[-2000:]}") from None
    return result


def delivered(tenant: Instance, count: int, what: str, batch: int | None = None) -> dict[str, Any]:
    done = step(tenant, "deliver", batch=batch)
    if (done["delivered"], done["rejected"], done["failed"], done["pending"]) != (count, 0, 0, 0):
        raise BenchError(f"{what}: {done} (expected {count} delivered, none left)")
    return done


def held(hub_database: str) -> tuple[int, int]:
    """(statements, distinct ids) the hub holds."""
    with psycopg.connect(hub_database, connect_timeout=10) as conn:
        found = conn.execute(
            "SELECT count(*), count(DISTINCT statement_id) FROM xapi_receivedstatement"
        ).fetchone()
    assert found is not None
    return int(found[0]), int(found[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=50_000, help="statements (50,000)")
    parser.add_argument("--sample", type=int, default=1000, help="of the reference (1,000)")
    parser.add_argument("--batch", type=int, default=None, help="statements a request")
    parser.add_argument("--quick", action="store_true", help="a backlog of 5,000, a sample of 200")
    args = parser.parse_args()
    if args.quick:
        args.backlog, args.sample = 5000, 200
    if min(args.backlog, args.sample) < 1:
        parser.error("--backlog and --sample must be at least 1")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with tempfile.TemporaryDirectory(prefix="karmayogi-bench-xapi-") as tmp:
            run(Path(tmp), args)
    except (BenchError, PostgresError) as exc:
        sys.exit(f"xapi benchmark: {exc}")
    except KeyboardInterrupt:
        sys.exit("xapi benchmark: interrupted (everything it started is stopped)")


def run(tmp: Path, args: argparse.Namespace) -> None:
    workers = os.cpu_count() or 1
    secrets_ = {code: secrets.token_urlsafe(24) for code in (HUB, TENANT)}
    clients = {f"federation-{code}": secret for code, secret in secrets_.items()}
    with running_postgres(tmp) as pg, TokenIssuer(HOST, clients) as issuer:
        postgres = f"PostgreSQL {pg.bin_dir.parent.name}"
        port = free_port(HOST)
        hub_url = f"http://{HOST}:{port}"

        def portal(code: str) -> Instance:
            config = federation_config(code, issuer.url, secrets_[code], hub_url)
            url = hub_url if code == HUB else "http://127.0.0.1:9"  # the tenant serves nobody
            return instance(
                code, tmp / code, create_database(pg, code.replace("-", "_")), url, config
            )

        print(f"Preparing a hub and a tenant on {postgres} ...", flush=True)
        hub, tenant = portal(HUB), portal(TENANT)
        for each in (hub, tenant):
            manage(each, "prepare_portal")
        with gunicorn(hub.data_dir, port, workers, hub.data_dir / "gunicorn.log", hub.env):
            print(f"(r) {args.sample:,} statements, one a request ...", flush=True)
            step(tenant, "fill", f"--count={args.sample}")
            reference = delivered(tenant, args.sample, "the reference", batch=1)
            print(f"(a) a backlog of {args.backlog:,} statements, in batches ...", flush=True)
            began = time.perf_counter()
            filled = step(tenant, "fill", f"--count={args.backlog}", f"--first={args.sample + 1}")
            print(f"    queued in {time.perf_counter() - began:.1f} s", flush=True)
            batched = delivered(tenant, args.backlog, "the batched delivery", batch=args.batch)
        total = args.sample + args.backlog
        stored, distinct = held(pg.url(HUB.replace("-", "_")))
        if (stored, distinct) != (total, total):
            raise BenchError(f"the hub holds {stored} statements ({distinct} ids), not {total}")
        print("(p) pruning the delivered rows ...", flush=True)
        pruned = step(tenant, "prune")
        if pruned["pruned"] != total:
            raise BenchError(f"pruning removed {pruned['pruned']} of {total} rows")
    report(args, postgres, workers, filled, reference, batched, pruned)


def report(
    args: argparse.Namespace,
    postgres: str,
    workers: int,
    filled: dict[str, Any],
    reference: dict[str, Any],
    batched: dict[str, Any],
    pruned: dict[str, Any],
) -> None:
    print(
        f"\nxAPI delivery of a backlog: {postgres}; hub on gunicorn {workers} workers x "
        f"{THREADS} threads; statements of about {filled['bytes']:,} bytes"
    )
    row(["step", "statements", "seconds", "per s", "x (r)", "goal", "met?"])
    ref_rate = args.sample / reference["seconds"]
    rate = args.backlog / batched["seconds"]
    row(
        [
            "(r) one a request (PUT), reference",
            f"{args.sample:,}",
            f"{reference['seconds']:.2f}",
            f"{ref_rate:,.0f}",
            "1.00",
            "reference",
            "",
        ]
    )
    row(
        [
            f"(a) batches of {batched['batch']} (POST)",
            f"{args.backlog:,}",
            f"{batched['seconds']:.2f}",
            f"{rate:,.0f}",
            f"{rate / ref_rate:.1f}",
            f">= {RATE_GOAL:,.0f}/s",
            verdict([] if rate >= RATE_GOAL else [f"{rate:,.0f}/s"]),
        ]
    )
    count = pruned["pruned"]
    seconds = pruned["seconds"]
    row(
        [
            "(p) pruned after acknowledgement",
            f"{count:,}",
            f"{seconds:.2f}",
            f"{count / seconds:,.0f}",
            "",
            "",
            "",
        ]
    )
    print(
        f"\n  The hub holds each of the {args.sample + args.backlog:,} statements once; "
        "times are the delivery's, inside its process."
    )


if __name__ == "__main__":
    main()
