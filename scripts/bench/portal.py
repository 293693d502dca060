"""Portal pages under load, printed side by side with a bare Django view (run by `make bench`).

A production-configured portal for Bihar (Hindi and English) on PostgreSQL, its own demo
courses plus ``--courses`` records of other tenants in the catalogue (10,000 by default),
served by gunicorn with one gthread worker per core. wrk loads one URL at a time with
``--connections`` clients (32), for ``--seconds`` (10) in each of ``--rounds`` rounds (3),
after a short warm-up; the figures are the rounds' medians. The URLs:

- a bare Django view (``HttpResponse("ok")`` behind the portal's middleware): the reference;
- the catalogue page (``/courses/``) and a course page, anonymous and signed in.

Goals: anonymous pages at least 40% of the bare view's requests/s with p99 under 250 ms;
signed-in pages (the issue "signed-in pages fast", goal 1) at least 15% with p99 under 300 ms;
every worker under 250 MB RSS after the load (goal 4). After the table each goal is printed on
a line of its own beside its reference from the same run. Figures are reported, not
asserted. What is asserted is that the run measures the right thing, before it measures:
anonymous pages come from the page cache, signed-in pages show the learner signed in, and a
course published again reaches the cached catalogue at once. If not, it exits non-zero.

It starts its own PostgreSQL and portal in a temporary folder, on loopback only, and stops and
removes them at the end, Ctrl-C included. wrk shares the cores with the portal, so absolute
figures understate a real server: compare the rows of one run with each other, never with
another machine's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import httpx

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(__file__).resolve().parent / "portal_site"  # bench settings, urls and data
sys.path.insert(0, str(ROOT))

from serving import HOST, THREADS, BenchError, gunicorn, run_in  # noqa: E402

from tests.postgres import PostgresError, running_postgres  # noqa: E402

if TYPE_CHECKING:
    from bench_data import Course  # importable only once Django is set up

TENANT = {
    "KARMAYOGI_TENANT": "bihar",
    "KARMAYOGI_SITE_NAME": "Bihar Karmayogi",
    "KARMAYOGI_DOMAIN": "learn.bihar.example",
    "KARMAYOGI_LANGUAGES": json.dumps(
        [
            {"code": "hi", "name": "Hindi", "name_local": "हिन्दी", "bidi": False},
            {"code": "en", "name": "English", "name_local": "English", "bidi": False},
        ],
        ensure_ascii=False,
    ),
}
ANONYMOUS_SHARE = 0.40
SIGNED_IN_SHARE = 0.15
P99_GOAL_MS = 250.0  # anonymous pages
SIGNED_IN_P99_GOAL_MS = 300.0
RSS_GOAL_MB = 250.0
WARM_SECONDS = 2
COMMAND_TIMEOUT = 600.0
# Language-independent marks of the page header (the tenant's default language is Hindi).
SIGN_IN_MARK = 'href="/auth/authenticate/"'
SIGN_OUT_MARK = 'action="/auth/logout/"'


@dataclass(frozen=True)
class Load:
    """What one wrk run measured."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    failed: int  # responses other than 2xx/3xx
    timeouts: int


@dataclass(frozen=True)
class Target:
    label: str
    path: str
    cookie: str
    share: float | None  # goal: at least this share of the bare view's requests/s
    p99_ms: float = P99_GOAL_MS  # goal: p99 latency under this


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def portal_env(data_dir: Path, database_url: str, port: int) -> dict[str, str]:
    """The production settings' environment, for Bihar on loopback, plus the bench urls."""
    return {
        **TENANT,
        "DJANGO_SETTINGS_MODULE": "bench_settings",
        "PYTHONPATH": os.pathsep.join([str(SITE), str(ROOT)]),
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": database_url,
        "KARMAYOGI_OIDC_CLIENT_SECRET": "bench-unused",  # nobody signs in through Keycloak
        "KARMAYOGI_OIDC_ISSUER": f"http://{HOST}:9/realms/bihar",  # nor is the realm reached
        "KARMAYOGI_MEDIA_ROOT": str(data_dir / "media"),
        "DJANGO_ALLOWED_HOSTS": HOST,
        "KARMAYOGI_SSL_REDIRECT": "false",
        "KARMAYOGI_PORTAL_URL": f"http://{HOST}:{port}",
        "KARMAYOGI_DATA_DIR": str(data_dir),
        "KARMAYOGI_LOG_LEVEL": "WARNING",
    }


def use_env(portal: dict[str, str]) -> None:
    """Make ``portal`` this process's environment, and its children's: nothing of a portal
    the caller may have configured (an env file, a database) leaks into the run."""
    for key in list(os.environ):
        if key.startswith(("KARMAYOGI_", "DJANGO_")) or key in ("DATABASE_URL", "PYTHONPATH"):
            del os.environ[key]
    os.environ.update(portal)


def manage(data_dir: Path, *command: str) -> None:
    run_in(
        data_dir,
        [sys.executable, "-m", "tenant_portal.manage", *command],
        f"manage.py {command[0]}",
        COMMAND_TIMEOUT,
    )


def fetch(url: str, cookie: str = "") -> httpx.Response:
    # No client, so no cookie jar: each request carries exactly the cookies given.
    response = httpx.get(url, headers={"Cookie": cookie} if cookie else {}, timeout=30)
    if response.status_code != 200:
        raise BenchError(f"GET {url} answered {response.status_code}, expected 200")
    return response


def check_anonymous(url: str, expected: list[str]) -> None:
    """The page anonymous visitors get, after one visit, comes from the page cache."""
    fetch(url)
    response = fetch(url)
    state = response.headers.get("X-Page-Cache")
    if state != "hit":
        raise BenchError(
            f"{url}: the second anonymous visit was not served from the page cache "
            f"(X-Page-Cache: {state}); the load would measure an uncached page"
        )
    if SIGN_OUT_MARK in response.text or SIGN_IN_MARK not in response.text:
        raise BenchError(f"{url}: the anonymous page does not offer to sign in")
    for text in expected:
        if text not in response.text:
            raise BenchError(f"{url}: the page does not show {text!r}")


def signed_in_cookie(url: str, session: str, name: str) -> str:
    """The Cookie header of a browser signed in on ``url``: the session, and the CSRF cookie
    the first page sets, as a browser sends them back."""
    response = fetch(url, session)
    text = response.text
    if SIGN_OUT_MARK not in text or SIGN_IN_MARK in text or name not in text:
        raise BenchError(f"{url}: the page does not show {name} signed in; check the session")
    if "X-Page-Cache" in response.headers:
        raise BenchError(f"{url}: a signed-in page went through the anonymous page cache")
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        jar.load(header)
    return "; ".join([session, *(f"{key}={morsel.value}" for key, morsel in jar.items())])


def check_invalidation(data: ModuleType, base: str, catalogue: str, course: Course) -> None:
    """Publishing a course reaches the cached catalogue and course page at once."""
    check_anonymous(base + catalogue, [])
    check_anonymous(base + course.path, [course.title])
    title = f"{course.title} ({uuid.uuid4().hex[:8]})"
    data.publish_new_title(course, title)
    for path in (catalogue, course.path):
        fresh = fetch(base + path)
        if title not in fresh.text or fresh.headers.get("X-Page-Cache") != "miss":
            raise BenchError(
                f"{path}: after publishing {title!r}, anonymous visitors still get the old page "
                f"(X-Page-Cache: {fresh.headers.get('X-Page-Cache')})"
            )
        check_anonymous(base + path, [title])


def milliseconds(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if not match:
        raise BenchError(f"cannot read wrk's latency {value!r}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[match[2]]
    return float(match[1]) * scale


def parse_wrk(output: str) -> Load:
    def find(pattern: str) -> str:
        match = re.search(pattern, output, re.MULTILINE)
        if not match:
            raise BenchError(f"cannot read wrk's output:\n{output}")
        return match[1]

    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    timeouts = re.search(r"Socket errors: .*timeout (\d+)", output)
    return Load(
        requests_per_second=float(find(r"^Requests/sec:\s+([\d.]+)")),
        p50_ms=milliseconds(find(r"^\s+50%\s+(\S+)")),
        p99_ms=milliseconds(find(r"^\s+99%\s+(\S+)")),
        requests=int(find(r"(\d+) requests in")),
        failed=int(failed[1]) if failed else 0,
        timeouts=int(timeouts[1]) if timeouts else 0,
    )


def wrk(url: str, seconds: int, connections: int, cookie: str) -> Load:
    command = [
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout=10s",
        "--latency",
    ]
    if cookie:
        command += ["-H", f"Cookie: {cookie}"]
    try:
        result = subprocess.run(
            [*command, url], capture_output=True, text=True, timeout=seconds + 30, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk on {url} did not finish within {seconds + 30} s") from None
    if result.returncode != 0:
        raise BenchError(f"wrk failed on {url}: {result.stderr.strip()}")
    load = parse_wrk(result.stdout)
    if load.failed:
        raise BenchError(f"{url}: {load.failed} of {load.requests} responses under load failed")
    return load


def worker_memory(master: int) -> list[tuple[float, float]]:
    """(VmRSS, VmHWM) in MB of each child of the gunicorn master."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:
            continue  # the process has gone
        fields = dict(line.split(":", 1) for line in lines if ":" in line)
        if fields.get("PPid", "").strip() == str(master) and "VmRSS" in fields:
            rss, peak = (int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))
            found.append((rss, peak))
    return found


def median_load(loads: list[Load]) -> Load:
    return Load(
        requests_per_second=statistics.median(load.requests_per_second for load in loads),
        p50_ms=statistics.median(load.p50_ms for load in loads),
        p99_ms=statistics.median(load.p99_ms for load in loads),
        requests=sum(load.requests for load in loads),
        failed=sum(load.failed for load in loads),
        timeouts=sum(load.timeouts for load in loads),
    )


def row(cells: list[str]) -> None:
    label, *figures, goal, met = cells
    line = f"  {label:<24}" + "".join(f"{f:>11}" for f in figures) + f"   {goal:<30} {met}"
    print(line.rstrip())


def verdict(load: Load, share: float, target: Target) -> str:
    goal_share = target.share or 0.0
    missed = [
        what
        for what, ok in (("share", share >= goal_share), ("p99", load.p99_ms < target.p99_ms))
        if not ok
    ]
    return "yes" if not missed else "NO: " + ", ".join(missed)


def report(targets: list[Target], loads: list[Load], memory: list[tuple[float, float]]) -> None:
    bare = loads[0].requests_per_second
    row(["page", "req/s", "% of bare", "p50 ms", "p99 ms", "goal", "met?"])
    for target, load in zip(targets, loads, strict=True):
        share = load.requests_per_second / bare
        goal, met = "reference", ""
        if target.share is not None:
            goal = f">= {target.share:.0%} of bare, p99 < {target.p99_ms:.0f} ms"
            met = verdict(load, share, target)
        if load.timeouts:
            met += f" ({load.timeouts} timed out)"
        row(
            [
                target.label,
                f"{load.requests_per_second:.1f}",
                f"{share:.0%}",
                f"{load.p50_ms:.1f}",
                f"{load.p99_ms:.1f}",
                goal,
                met,
            ]
        )
    print('\nGoals of the issue "signed-in pages fast", beside the bare view of this run:')
    for target, load in zip(targets, loads, strict=True):
        if target.p99_ms != SIGNED_IN_P99_GOAL_MS:
            continue
        share = load.requests_per_second / bare
        print(
            f"  goal 1, {target.label}: {load.requests_per_second:.0f} req/s = {share:.1%} of "
            f"the bare view's {bare:.0f} req/s (goal >= {target.share:.0%}), p50 "
            f"{load.p50_ms:.0f} ms, p99 {load.p99_ms:.0f} ms (goal < "
            f"{target.p99_ms:.0f} ms): "
            + ("met" if verdict(load, share, target) == "yes" else "NOT met")
        )
    largest = max(rss for rss, _peak in memory)
    peak = max(hwm for _rss, hwm in memory)
    each = ", ".join(f"{rss:.0f} MB" for rss, _peak in sorted(memory))
    print(
        f"  goal 4, memory: each worker's RSS after the load {each} (peak {peak:.0f} MB; "
        f"goal < {RSS_GOAL_MB:.0f} MB each): " + ("met" if largest < RSS_GOAL_MB else "NOT met")
    )


def targets_checked(data: ModuleType, base: str) -> list[Target]:
    """The pages to load, each checked to show what it should; a course is published again."""
    courses = data.own_courses()
    if len(courses) < 2:
        raise BenchError(f"seed_courses left {len(courses)} course pages; the run needs two")
    course, republished = courses[0], courses[1]
    catalogue = "/courses/"
    session, name = data.signed_in_session(course)

    fetch(base + "/bench/bare/")
    check_anonymous(base + catalogue, [str(data.catalogue_size())])
    check_anonymous(base + course.path, [course.title])
    check_invalidation(data, base, catalogue, republished)
    print("invalidation on publish: ok", flush=True)
    signed_in = {p: signed_in_cookie(base + p, session, name) for p in (catalogue, course.path)}
    return [
        Target("bare Django view", "/bench/bare/", "", None),
        Target("catalogue (anonymous)", catalogue, "", ANONYMOUS_SHARE),
        Target("course (anonymous)", course.path, "", ANONYMOUS_SHARE),
        Target(
            "catalogue (signed in)",
            catalogue,
            signed_in[catalogue],
            SIGNED_IN_SHARE,
            SIGNED_IN_P99_GOAL_MS,
        ),
        Target(
            "course (signed in)",
            course.path,
            signed_in[course.path],
            SIGNED_IN_SHARE,
            SIGNED_IN_P99_GOAL_MS,
        ),
    ]


def load_all(targets: list[Target], base: str, args: argparse.Namespace) -> list[Load]:
    """Medians of ``args.rounds`` rounds; each round loads every page in turn, so a slow
    moment of the machine touches every row alike rather than one."""
    runs: list[list[Load]] = [[] for _ in targets]
    for number in range(1, args.rounds + 1):
        print(f"round {number} of {args.rounds} ...", flush=True)
        for target, results in zip(targets, runs, strict=True):
            url = base + target.path
            if number == 1:
                wrk(url, WARM_SECONDS, args.connections, target.cookie)
            results.append(wrk(url, args.seconds, args.connections, target.cookie))
    return [median_load(results) for results in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--courses", type=int, default=10_000, help="records of other tenants to add"
    )
    parser.add_argument("--seconds", type=int, default=10, help="per page and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if min(args.seconds, args.rounds, args.connections) < 1:
        parser.error("--seconds, --rounds and --connections must be at least 1")
    # A plain kill ends the run as Ctrl-C does: through the cleanup.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if shutil.which("wrk") is None:
            raise BenchError("wrk is not installed: run scripts/ensure-system-packages.sh wrk")
        with tempfile.TemporaryDirectory(prefix="karmayogi-bench-portal-") as tmp:
            run(Path(tmp), args)
    except (BenchError, PostgresError) as exc:
        sys.exit(f"portal benchmark: {exc}")
    except KeyboardInterrupt:
        sys.exit("portal benchmark: interrupted (everything it started is stopped)")


def run(tmp: Path, args: argparse.Namespace) -> None:
    data_dir = tmp / "portal"
    data_dir.mkdir()
    workers = os.cpu_count() or 1
    with running_postgres(tmp) as pg:
        postgres = f"PostgreSQL {pg.bin_dir.parent.name}"
        pg.create_database("portal")
        port = free_port()
        base = f"http://{HOST}:{port}"
        use_env(portal_env(data_dir, pg.url("portal"), port))
        print(f"Preparing a portal on {postgres} ...", flush=True)
        manage(data_dir, "prepare_portal")
        manage(data_dir, "seed_courses")

        import django

        sys.path.insert(0, str(SITE))
        django.setup()
        import bench_data as data

        try:
            started = time.perf_counter()
            data.add_catalogue_records(args.courses)
            took = time.perf_counter() - started
            print(f"{args.courses:,} catalogue records added in {took:.1f} s", flush=True)
            with gunicorn(data_dir, port, workers, tmp / "gunicorn.log") as master:
                targets = targets_checked(data, base)
                loads = load_all(targets, base, args)
                memory = worker_memory(master)
            total = data.catalogue_size()
        finally:
            data.close()
    if not memory:
        raise BenchError(f"found no gunicorn workers under pid {master}")
    print(
        f"\nPortal under load: {total:,} courses in the catalogue ({args.courses:,} from other "
        f"tenants), {postgres}, gunicorn {workers} workers x {THREADS} threads; wrk with "
        f"{args.connections} connections, medians of {args.rounds} rounds of {args.seconds} s"
    )
    report(targets, loads, memory)


if __name__ == "__main__":
    main()
