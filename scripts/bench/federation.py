"""Federation sync at catalogue scale, printed side by side with its floors (run by `make bench`).

A hub (``karmayogi-bharat``) offers ``--records`` course records in its change feed (10,000
and then 100,000 by default; ``--quick``: 1,000 and 10,000); a tenant (``bihar``) pulls them,
pages of 500. For each size, in one run:

- (a) a full sync into an empty tenant: ``manage.py federation_sync`` in its own process, with
  its own empty database; every record verified against the hub's keys, validated and stored;
- (b) the same feed fetched and parsed from another process, nothing verified or stored: what
  the hub and the wire cost; the reference for (a);
- (b2) the feed fetched and every record checked as the sync checks it (signature, schema,
  competencies), nothing stored: where (a)'s time goes, between (b) and the writes;
- (c) the same rows bulk-inserted into an empty catalogue, a page per transaction, without
  fetching or converting: what the writes cost at least;
- (d) an incremental sync after the hub published 100 (``--changed``) of its courses again,
  as new versions;
- (e) the catalogue (a) filled, harvested by an independent OAI-PMH client (Sickle,
  ``ListRecords`` in ``oai_dc``, pages of ``KARMAYOGI_OAI_PAGE_SIZE``) from the tenant served
  by the same gunicorn setup: the other way a catalogue leaves an instance (DESIGN §8).

Goals (issue 18, goal 2), each printed beside its reference from the same run: (a) at least
1,500 records/s, and faster than (e), the unverified OAI-PMH harvest of the same catalogue;
(d) under 0.5 s; the sync process's peak memory (VmHWM) flat as the catalogue grows 10x
(within 1.5x). Figures are reported, not asserted; what is asserted is that each step did
what it measures (every record applied, none quarantined, the rows all there), else the run
exits non-zero. Times of (a) and (d) are the command's, in its process once Django has
started (the start-up is shown apart). (b) and (d) are medians of ``--rounds`` rounds; (a),
(b2) and (c) run once per size (each takes minutes at 100,000 records, and (a) and (c) need an
empty database each). The sync's peak memory is its own process's (each of its signature
workers, a fresh Python with joserfc alone, holds about 35 MB whatever the catalogue).

The hub is served by gunicorn with the production settings. Its records are written straight
into its change log, each built by ``records.record_of`` and signed by ``signing.sign``, rather
than published as 100,000 Wagtail pages. The feed asks for a token of the hub realm; in this
benchmark only, a stand-in issuer on loopback (``federation_site/issuer.py``) plays Keycloak's
hub realm: it serves the realm's JWKS and token endpoints and mints RS256 client-credentials
tokens, which the portal's own auth code checks as it checks Keycloak's. Keycloak itself would
add a minute of start-up and nothing to what is measured.

It starts its own PostgreSQL, hub and issuer in a temporary folder, on loopback only, and stops
and removes them at the end, Ctrl-C included. All processes share the machine's cores: compare
the rows of one run with each other, never with another machine's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(__file__).resolve().parent / "federation_site"  # the issuer and the worker steps
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(SITE))

from issuer import TokenIssuer  # noqa: E402
from serving import HOST, THREADS, BenchError, gunicorn, run_in  # noqa: E402

from infra.net import free_port  # noqa: E402
from tests.postgres import PostgresError, PostgresServer, running_postgres  # noqa: E402

HUB = "karmayogi-bharat"
TENANT = "bihar"
LANGUAGES = [
    {"code": "hi", "name": "Hindi", "name_local": "हिन्दी", "bidi": False},
    {"code": "en", "name": "English", "name_local": "English", "bidi": False},
]
PAGE = 500
CHANGED = 100
RATE_GOAL = 1500.0  # records/s of a full sync, which must also beat the OAI-PMH harvest
INCREMENTAL_GOAL_S = 0.5
FLAT_GOAL = 1.5  # peak memory at the largest size over the smallest
COMMAND_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Instance:
    """A portal's environment: its code, database, data folder and federation settings."""

    code: str
    env: dict[str, str]
    data_dir: Path


@dataclass(frozen=True)
class Step:
    """What one worker step reported, and the wall time of its process."""

    result: dict[str, Any]
    process_seconds: float


@dataclass
class Figures:
    """One size's measurements."""

    size: int
    fetch: list[float]
    check: float
    full: Step
    insert: float
    changed: int
    incremental: list[Step]
    harvest: float


def federation_config(code: str, issuer: str, secret: str, hub_url: str) -> dict[str, Any]:
    """The tenant is a member the hub's settings declare (one that does not publish, so the
    hub pulls nobody); the tenant learns the hub's keys URL from the hub's member directory."""
    tenant = {
        "code": TENANT,
        "name": "Bihar",
        "tenantType": "state",
        "portalUrl": "http://127.0.0.1:9",
        "keysUrl": "http://127.0.0.1:9/federation/v1/keys",
        "publish": False,
    }
    return {
        "code": code,
        "isHub": code == HUB,
        "hub": HUB,
        "hubIssuer": issuer,
        "hubUrl": hub_url,
        "clientId": f"federation-{code}",
        "clientSecret": secret,
        "peers": [] if code == HUB else [{"code": HUB, "url": hub_url}],
        "members": [tenant] if code == HUB else [],
        "subscribe": None if code == HUB else {"languages": ["hi", "en"], "competencyAreas": []},
    }


def instance(
    code: str, data_dir: Path, database_url: str, url: str, federation: dict[str, Any]
) -> Instance:
    """The production settings' environment for ``code``, on loopback. Nothing of a portal the
    caller may have configured (an env file, a database) leaks in."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KARMAYOGI_", "DJANGO_"))
        and key not in ("DATABASE_URL", "PYTHONPATH")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "tenant_portal.settings.production",
            "PYTHONPATH": os.pathsep.join([str(SITE), str(ROOT)]),
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DATABASE_URL": database_url,
            "KARMAYOGI_OIDC_CLIENT_SECRET": "bench-unused",  # nobody signs in
            "KARMAYOGI_OIDC_ISSUER": f"http://{HOST}:9/realms/{code}",  # nor is it reached
            "KARMAYOGI_MEDIA_ROOT": str(data_dir / "media"),
            "DJANGO_ALLOWED_HOSTS": HOST,
            "KARMAYOGI_SSL_REDIRECT": "false",
            "KARMAYOGI_TENANT": code,
            "KARMAYOGI_SITE_NAME": f"{code} portal",
            "KARMAYOGI_DOMAIN": f"learn.{code}.example",
            "KARMAYOGI_PORTAL_URL": url,
            "KARMAYOGI_LANGUAGES": json.dumps(LANGUAGES, ensure_ascii=False),
            "KARMAYOGI_FEDERATION": json.dumps(federation),
            "KARMAYOGI_DATA_DIR": str(data_dir),
            "KARMAYOGI_LOG_LEVEL": "WARNING",
        }
    )
    return Instance(code, env, data_dir)


def run_command(portal: Instance, command: list[str], what: str) -> str:
    return run_in(portal.data_dir, command, f"{what} on {portal.code}", COMMAND_TIMEOUT, portal.env)


def manage(portal: Instance, *command: str) -> None:
    run_command(portal, [sys.executable, "-m", "tenant_portal.manage", *command], command[0])


def step(portal: Instance, name: str, *args: str) -> Step:
    """Run a step of ``federation_site/worker.py`` in its own process."""
    began = time.perf_counter()
    stdout = run_command(
        portal, [sys.executable, str(SITE / "worker.py"), name, *args], f"the {name} step"
    )
    seconds = time.perf_counter() - began
    try:
        result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise BenchError(f"the {name} step printed no result:\n{stdout[-2000:]}") from None
    return Step(result, seconds)


def create_database(pg: PostgresServer, name: str, template: str | None = None) -> str:
    """An empty database, or a copy of ``template`` (which nobody may be connected to)."""
    with psycopg.connect(pg.url(), autocommit=True, connect_timeout=10) as conn:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(statement)
    return pg.url(name)


def drop_database(pg: PostgresServer, name: str) -> None:
    with psycopg.connect(pg.url(), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def counted(output: str) -> tuple[int, int]:
    """(applied, quarantined) from federation_sync's line for the hub."""
    match = re.search(rf"^{re.escape(HUB)}: (\d+) applied, (\d+) quarantined", output, re.M)
    if not match:
        raise BenchError(f"cannot read federation_sync's output: {output[-500:]}")
    return int(match[1]), int(match[2])


def expect_sync(done: Step, applied: int, entries: int, what: str) -> None:
    got, quarantined = counted(done.result["output"])
    if got != applied or quarantined or done.result["entries"] != entries:
        raise BenchError(
            f"{what}: {got} applied (expected {applied}), {quarantined} quarantined, "
            f"{done.result['entries']} catalogue rows (expected {entries}): "
            f"{done.result['output'][-500:]}"
        )


def measure(
    pg: PostgresServer,
    tmp: Path,
    hub: Instance,
    tenant_env: Any,
    size: int,
    args: argparse.Namespace,
) -> Figures:
    """Steps (a) to (d) for a hub that already offers ``size`` records."""
    dump = tmp / f"records-{size}.jws"
    # The first fetch warms the hub (its database pages, its workers) for every later step
    # alike, and keeps the records for (c); it is not counted.
    reader = tenant_env(f"reader-{size}", None)
    warm = step(reader, "fetch", f"--dump={dump}")
    if warm.result["records"] != size:
        raise BenchError(f"the feed served {warm.result['records']} records, not {size}")

    print("  (a) full sync into an empty tenant ...", flush=True)
    tenant = tenant_env(f"tenant-{size}", f"tenant_{size}")
    full = step(tenant, "sync", f"--peer={HUB}", f"--limit={PAGE}")
    expect_sync(full, size, size, "the full sync")

    print("  (e) OAI-PMH harvest of the same catalogue (Sickle, oai_dc) ...", flush=True)
    harvest = harvest_oai(tenant, size)

    print("  (b2) fetch + check, nothing stored ...", flush=True)
    checked = step(tenant_env(f"checker-{size}", None), "check", f"--peer={HUB}")
    if checked.result["records"] != size or checked.result["refused"]:
        raise BenchError(f"the check step accepted {checked.result} of {size} records")

    print(f"  (b) fetch + parse, nothing stored: {args.rounds} rounds ...", flush=True)
    fetch = [step(reader, "fetch").result["seconds"] for _ in range(args.rounds)]

    print("  (c) bulk insert of the same rows ...", flush=True)
    inserter = tenant_env(f"insert-{size}", f"insert_{size}")
    inserted = step(inserter, "insert", f"--dump={dump}")
    if inserted.result["records"] != size:
        raise BenchError(f"the bulk insert wrote {inserted.result['records']} of {size} rows")
    drop_database(pg, f"insert_{size}")
    dump.unlink()

    rounds, changed = args.rounds, args.changed
    print(f"  (d) incremental sync of {changed} changed records: {rounds} rounds ...", flush=True)
    incremental = []
    for number in range(rounds):
        step(hub, "change", f"--count={changed}", f"--round={number}")
        done = step(tenant, "sync", f"--peer={HUB}", f"--limit={PAGE}")
        expect_sync(done, changed, size, "the incremental sync")
        incremental.append(done)
    drop_database(pg, f"tenant_{size}")
    return Figures(
        size,
        fetch,
        checked.result["seconds"],
        full,
        inserted.result["seconds"],
        changed,
        incremental,
        harvest,
    )


def harvest_oai(tenant: Instance, size: int) -> float:
    """Serve the tenant (its catalogue now full) as the hub is served, and time a full Sickle
    harvest of it from another process."""
    port = free_port(HOST)
    url = f"http://{HOST}:{port}"
    served = Instance(tenant.code, {**tenant.env, "KARMAYOGI_PORTAL_URL": url}, tenant.data_dir)
    workers = os.cpu_count() or 1
    with gunicorn(served.data_dir, port, workers, served.data_dir / "oai.log", served.env):
        done = step(served, "harvest", f"--url={url}/oai")
    if done.result["records"] != size:
        raise BenchError(f"the OAI-PMH harvest read {done.result['records']} of {size} records")
    return float(done.result["seconds"])


def row(cells: list[str]) -> None:
    label, *figures, goal, met = cells
    line = f"  {label:<38}" + "".join(f"{f:>10}" for f in figures) + f"   {goal:<24} {met}"
    print(line.rstrip())


def verdict(missed: list[str]) -> str:
    return "yes" if not missed else "NO: " + ", ".join(missed)


def report(figures: Figures) -> None:
    fetch = statistics.median(figures.fetch)
    full = figures.full.result["seconds"]
    incremental = statistics.median(done.result["seconds"] for done in figures.incremental)
    rate = figures.size / full

    def line(label: str, count: int, seconds: float, goal: str = "", met: str = "") -> None:
        # Times against (b)'s are for the whole feed; (d) reads only the changed records.
        versus = f"{seconds / fetch:.2f}" if label[:3] != "(d)" else "-"
        row([label, f"{count:,}", f"{seconds:.2f}", f"{count / seconds:,.0f}", versus, goal, met])

    harvest = figures.size / figures.harvest
    row(["step", "records", "seconds", "records/s", "x (b)", "goal", "met?"])
    line("(b) fetch + parse, nothing stored", figures.size, fetch, "reference")
    line("(b2) fetch + check, one core, no writes", figures.size, figures.check)
    missed = [
        what
        for what, ok in (
            (f"{rate:,.0f}/s", rate >= RATE_GOAL),
            (f"not faster than (e)'s {harvest:,.0f}/s", rate > harvest),
        )
        if not ok
    ]
    goal = f">= {RATE_GOAL:,.0f}/s, > (e)"
    line("(a) full sync into an empty tenant", figures.size, full, goal, verdict(missed))
    line("(c) bulk insert of the same rows", figures.size, figures.insert, "floor of the writes")
    line("(e) OAI-PMH harvest, Sickle, oai_dc", figures.size, figures.harvest, "reference of (a)")
    goal, met = f"(the goal is for {CHANGED})", ""
    if figures.changed == CHANGED:
        goal = f"< {INCREMENTAL_GOAL_S} s"
        met = verdict([] if incremental < INCREMENTAL_GOAL_S else [f"{incremental:.2f} s"])
    changed = figures.changed
    line(f"(d) incremental sync, {changed:,} changed", changed, incremental, goal, met)
    start_up = statistics.median(
        done.process_seconds - done.result["seconds"]
        for done in [figures.full, *figures.incremental]
    )
    print(
        f"\n  (a) and (d) time the command inside its process; the process's start-up "
        f"(Python, Django) adds {start_up:.1f} s to each."
    )


def report_memory(all_figures: list[Figures]) -> None:
    first, last = all_figures[0], all_figures[-1]
    ratio = last.full.result["peak_mb"] / first.full.result["peak_mb"]
    sizes = [f"{f.size:,}" for f in all_figures]
    print(
        "\nPeak memory of the full sync's process (VmHWM), as the catalogue grows "
        f"{last.size / first.size:.0f}x:"
    )
    row(["", *sizes, "ratio", "goal", "met?"])
    peaks = [f.full.result["peak_mb"] for f in all_figures]
    started = [f.full.result["started_mb"] for f in all_figures]
    row(
        [
            "peak RSS, MB",
            *(f"{p:.0f}" for p in peaks),
            f"{ratio:.2f}",
            f"<= {FLAT_GOAL}x",
            verdict([] if ratio <= FLAT_GOAL else [f"{ratio:.2f}x"]),
        ]
    )
    row(["RSS once Django started, MB", *(f"{s:.0f}" for s in started), "", "", ""])
    row(
        [
            "grown during the sync, MB",
            *(f"{p - s:.0f}" for p, s in zip(peaks, started, strict=True)),
            "",
            "",
            "",
        ]
    )


def report_goals(all_figures: list[Figures]) -> None:
    """Goal 2 of issue 18, each figure beside its reference from this run."""

    def goal_row(label: str, figure: str, goal: str, reference: str, met: str) -> None:
        print(f"  {label:<34}{figure:>10}   {goal:<13}{reference:<24}{met}".rstrip())

    print("\nFederation sync goals, each beside its reference from this run:")
    goal_row("goal", "figure", "goal", "reference", "met?")
    for figures in all_figures:
        rate = figures.size / figures.full.result["seconds"]
        harvest = figures.size / figures.harvest
        missed = [f"{rate:,.0f}/s"] if rate < RATE_GOAL else []
        missed += [] if rate > harvest else ["slower than (e)"]
        goal_row(
            f"full sync, {figures.size:,} records",
            f"{rate:,.0f}/s",
            f">= {RATE_GOAL:,.0f}/s",
            f"(e) harvest {harvest:,.0f}/s",
            verdict(missed),
        )
    for figures in all_figures:
        if figures.changed != CHANGED:
            continue
        seconds = statistics.median(done.result["seconds"] for done in figures.incremental)
        goal_row(
            f"incremental, {CHANGED} of {figures.size:,}",
            f"{seconds:.2f} s",
            f"< {INCREMENTAL_GOAL_S} s",
            "",
            verdict([] if seconds < INCREMENTAL_GOAL_S else [f"{seconds:.2f} s"]),
        )
    if len(all_figures) > 1:
        first, last = all_figures[0], all_figures[-1]
        peaks = [f.full.result["peak_mb"] for f in (first, last)]
        ratio = peaks[1] / peaks[0]
        goal_row(
            f"peak memory, {first.size:,} to {last.size:,}",
            f"{ratio:.2f}x",
            f"<= {FLAT_GOAL}x",
            f"{peaks[0]:.0f} to {peaks[1]:.0f} MB",
            verdict([] if ratio <= FLAT_GOAL else [f"{ratio:.2f}x"]),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--records",
        "--sizes",
        dest="records",
        default="10000,100000",
        help="course records on the hub, comma-separated, ascending (default 10000,100000)",
    )
    parser.add_argument("--quick", action="store_true", help="sizes 1000,10000")
    parser.add_argument("--rounds", type=int, default=3, help="of (b) and (d)")
    parser.add_argument(
        "--changed", type=int, default=CHANGED, help=f"records changed for (d) ({CHANGED})"
    )
    args = parser.parse_args()
    try:
        sizes = [int(size) for size in ("1000,10000" if args.quick else args.records).split(",")]
    except ValueError:
        parser.error("--records takes whole numbers separated by commas, e.g. 10000,100000")
    if sorted(sizes) != sizes or len(set(sizes)) != len(sizes):
        parser.error("--records must ascend")
    if min(args.rounds, args.changed) < 1 or args.changed > min(sizes):
        parser.error("--rounds must be at least 1, --changed from 1 to the smallest size")
    # A plain kill ends the run as Ctrl-C does: through the cleanup.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with tempfile.TemporaryDirectory(prefix="karmayogi-bench-federation-") as tmp:
            run(Path(tmp), sizes, args)
    except (BenchError, PostgresError) as exc:
        sys.exit(f"federation benchmark: {exc}")
    except KeyboardInterrupt:
        sys.exit("federation benchmark: interrupted (everything it started is stopped)")


def run(tmp: Path, sizes: list[int], args: argparse.Namespace) -> None:
    workers = os.cpu_count() or 1
    secrets_ = {code: secrets.token_urlsafe(24) for code in (HUB, TENANT)}
    clients = {f"federation-{code}": secret for code, secret in secrets_.items()}
    with running_postgres(tmp) as pg, TokenIssuer(HOST, clients) as issuer:
        postgres = f"PostgreSQL {pg.bin_dir.parent.name}"
        port = free_port(HOST)
        hub_url = f"http://{HOST}:{port}"

        def portal(code: str, folder: str, database: str) -> Instance:
            config = federation_config(code, issuer.url, secrets_[code], hub_url)
            url = hub_url if code == HUB else "http://127.0.0.1:9"  # the tenant serves nobody
            return instance(code, tmp / folder, pg.url(database), url, config)

        print(f"Preparing a hub and a tenant on {postgres} ...", flush=True)
        create_database(pg, "hub")
        hub = portal(HUB, "hub", "hub")
        manage(hub, "prepare_portal")
        # Every tenant database starts as a copy of one prepared, empty tenant.
        create_database(pg, "tenant_template")
        manage(portal(TENANT, "tenant-template", "tenant_template"), "prepare_portal")

        def tenant_env(folder: str, database: str | None) -> Instance:
            if database is not None:
                create_database(pg, database, template="tenant_template")
            return portal(TENANT, folder, database or "tenant_template")

        all_figures = []
        with gunicorn(hub.data_dir, port, workers, hub.data_dir / "gunicorn.log", hub.env):
            for size in sizes:
                print(f"\nThe hub offers {size:,} records: filling its change log ...", flush=True)
                filled = step(hub, "fill", f"--to={size}").result
                print(
                    f"  {filled['added']:,} records signed in {filled['sign_seconds']:.1f} s, "
                    f"written in {filled['write_seconds']:.1f} s",
                    flush=True,
                )
                all_figures.append(measure(pg, tmp, hub, tenant_env, size, args))
    for figures in all_figures:
        print(
            f"\nFederation sync of {figures.size:,} course records: {postgres}; hub on gunicorn "
            f"{workers} workers x {THREADS} threads; pages of {PAGE}; (b), (d): medians "
            f"of {args.rounds} rounds"
        )
        report(figures)
    if len(all_figures) > 1:
        report_memory(all_figures)
    report_goals(all_figures)


if __name__ == "__main__":
    main()
