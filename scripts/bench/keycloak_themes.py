"""How a new tenant's login theme reaches a running production Keycloak, measured.

A production Keycloak (``kc.sh build`` + ``start --optimized`` on PostgreSQL, as
``infra/keycloak/production.py`` renders it) is started in a temporary folder with a private
PostgreSQL, and a new theme is brought to it three ways; the figures are printed side by side:

(a) the theme JAR in ``providers/``: stop, ``kc.sh build``, start (the downtime of one node);
(b) the theme as a folder under ``themes/``: stop and start, no build;
(c) a folder with theme caching off (``--spi-theme--cache-themes=false
    --spi-theme--cache-templates=false``): no restart at all; is a new folder picked up
    live, and a changed file? (and the same with caching on, for comparison).

"Served" means a realm whose ``loginTheme`` is the new theme renders its login page with
the theme's stylesheet. It also checks whether the admin API answers on the internal address
without ``hostname-backchannel-dynamic``. A script, not a test: these machines are noisy.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from identity.admin import AdminAPI, Credentials  # noqa: E402
from identity.errors import IdentityError  # noqa: E402
from identity.themes import LoginTheme, theme_jar, theme_name, write_theme  # noqa: E402
from infra.home import KitHome  # noqa: E402
from infra.keycloak import production  # noqa: E402
from infra.keycloak.accounts import OperatorAccounts, bootstrap_operator_accounts  # noqa: E402
from infra.keycloak.release import find_java, install  # noqa: E402
from infra.net import free_port  # noqa: E402
from infra.targets.local.processes import stop_process_group, wait_for_http  # noqa: E402
from tests.postgres import PostgresServer, running_postgres  # noqa: E402

ADDRESS = "127.0.1.29"
HOSTNAME = "https://auth.bench.test"
REALM = "theme-bench"
NO_THEME_CACHE = ["--spi-theme--cache-themes=false", "--spi-theme--cache-templates=false"]
LIVE_WAIT = 15.0
LOGO = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle r="5"/></svg>\n'
# A fixed PKCE challenge: the login page only needs a well-formed request.
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def theme(code: str, primary: str = "#1a5276") -> LoginTheme:
    return LoginTheme(
        name=theme_name(code),
        display_name=f"{code} Karmayogi",
        logo=LOGO,
        logo_suffix=".svg",
        primary=primary,
        accent="#ffb000",
        languages=("en", "hi"),
    )


class Bench:
    def __init__(self, root: Path, dist: Path, postgres: PostgresServer, env: dict[str, str]):
        self.root, self.dist, self.env = root, dist, env
        self.port, self.management_port = free_port(ADDRESS), free_port(ADDRESS)
        self.url = f"http://{ADDRESS}:{self.port}"
        self.log = root / "keycloak.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.accounts: OperatorAccounts | None = None
        postgres.create_database("keycloak")
        self.kc = production.ProductionKeycloak(
            hostname=HOSTNAME,
            database=production.Database(
                host=postgres.host,
                port=postgres.port,
                name="keycloak",
                username=postgres.user,
                password=production.SecretRef("bench"),
            ),
            bootstrap_secret=production.SecretRef("bench"),
            internal_url=self.url,
            http_host=ADDRESS,
            http_port=self.port,
            management_port=self.management_port,
        )
        conf = production.render_conf(production.options(self.kc), production.source_notes(self.kc))
        (dist / "conf" / "keycloak.conf").write_text(conf)
        self.bootstrap_secret = secrets.token_urlsafe(24)
        self.run_env = env | production.plain_env(self.kc) | {"JAVA_HOME": str(find_java(env))}
        self.run_env |= {
            "KC_DB_PASSWORD": postgres.password,
            production.BOOTSTRAP_CLIENT_SECRET_ENV: self.bootstrap_secret,
        }

    # server -----------------------------------------------------------------------------

    def build(self) -> float:
        start = time.perf_counter()
        with self.log.open("ab") as handle:
            subprocess.run(
                production.build_command(str(self.dist)),
                env=self.run_env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                check=True,
            )
        return time.perf_counter() - start

    def start(self, *extra: str) -> float:
        began = time.perf_counter()
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(
                [*production.start_command(str(self.dist)), *extra],
                env=self.run_env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_http(
            f"http://{ADDRESS}:{self.management_port}/health/ready",
            name="Keycloak",
            log=self.log,
            timeout=300,
            process=self.process,
        )
        return time.perf_counter() - began

    def stop(self) -> float:
        began = time.perf_counter()
        if self.process is not None:
            stop_process_group(self.process.pid)
            self.process.wait(timeout=10)
            self.process = None
        return time.perf_counter() - began

    # admin and pages ----------------------------------------------------------------------

    def api(self) -> AdminAPI:
        assert self.accounts is not None
        r = self.accounts.reconciler
        return AdminAPI(Credentials(self.url, r.client_id, r.client_secret))

    def use_theme(self, name: str) -> str:
        """Set the bench realm's login theme; '' or Keycloak's refusal."""
        try:
            self.api().put(f"/{REALM}", {"loginTheme": name}, f"set loginTheme {name}")
        except IdentityError as exc:
            return str(exc)
        return ""

    def page(self) -> str:
        response = httpx.get(
            f"{self.url}/realms/{REALM}/protocol/openid-connect/auth",
            params={
                "client_id": "account-console",
                "response_type": "code",
                "scope": "openid",
                "redirect_uri": f"{HOSTNAME}/realms/{REALM}/account/",
                "code_challenge": CHALLENGE,
                "code_challenge_method": "S256",
            },
            timeout=30,
        )
        return response.text

    def served(self, name: str) -> bool:
        return re.search(rf"/login/{re.escape(name)}/css/karmayogi\.css", self.page()) is not None

    def stylesheet(self, name: str) -> str:
        match = re.search(
            rf'href="([^"]*/login/{re.escape(name)}/css/karmayogi\.css)"', self.page()
        )
        if match is None:
            return ""
        href = match.group(1).replace(HOSTNAME, self.url)
        return httpx.get(self.url + href if href.startswith("/") else href, timeout=30).text


def wait_until(check: Callable[[], bool], timeout: float = LIVE_WAIT) -> float | None:
    """Seconds until ``check`` holds, or None if it did not within ``timeout``."""
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        if check():
            return time.perf_counter() - began
        time.sleep(0.25)
    return None


def seconds(value: float | None) -> str:
    return f"not within {LIVE_WAIT:.0f} s" if value is None else f"{value:6.1f} s"


def row(label: str, *values: str) -> None:
    print(f"  {label:<50} " + "  ".join(f"{v:>18}" for v in values))


def run(bench: Bench) -> None:
    a, b, c, d, e = (theme(f"bench-{x}") for x in "abcde")
    (bench.dist / "providers" / "karmayogi-themes.jar").write_bytes(theme_jar([a]))
    first_build = bench.build()
    first_start = bench.start()
    bench.accounts = bootstrap_operator_accounts(
        bench.url, bench.kc.bootstrap_client_id, bench.bootstrap_secret
    )
    bench.api().post("", {"realm": REALM, "enabled": True, "loginTheme": a.name}, "bench realm")
    assert bench.served(a.name), "the JAR's theme is not served after the first build"
    print(f"Keycloak {bench.kc.version} on PostgreSQL, production mode, one node.")
    print(
        f"  first build {first_build:.1f} s, first start on an empty database {first_start:.1f} s\n"
    )

    # (a) a JAR in providers/: the build registers it.
    (bench.dist / "providers" / "karmayogi-themes.jar").write_bytes(theme_jar([a, b]))
    a_stop = bench.stop()
    a_build = bench.build()
    a_start = bench.start()
    a_refused = bench.use_theme(b.name)
    a_ok = bench.served(b.name)

    # (b) a folder under themes/: a restart, no build.
    write_theme(c, bench.dist / "themes")
    b_stop = bench.stop()
    # ... and whether the admin API takes tokens on the internal address without
    # dynamic backchannel URLs (a runtime option, so no build).
    b_start = bench.start("--hostname-backchannel-dynamic=false")
    try:
        bench.api().get(f"/{REALM}", "read the realm")
        admin_without_dynamic = "yes"
    except IdentityError as exc:
        admin_without_dynamic = f"no: {exc}"
    b_refused = bench.use_theme(c.name)
    b_ok = bench.served(c.name)
    # With caching on: a new folder, live.
    write_theme(d, bench.dist / "themes")
    d_refused = bench.use_theme(d.name)
    d_live = wait_until(lambda: bench.served(d.name))
    # With caching on: a changed colour in a served theme, live.
    bench.use_theme(c.name)
    write_theme(theme("bench-c", primary="#7b241c"), bench.dist / "themes")
    c_cached_live = wait_until(lambda: "#7b241c" in bench.stylesheet(c.name))
    # With caching on: a changed message bundle (translations, language names), live.
    cached_text = add_message(bench, c.name, "Bench cached sign-in")
    messages_cached_live = wait_until(lambda: cached_text in bench.page())

    # (c) caching off: a new folder, no restart.
    bench.stop()
    c_start = bench.start(*NO_THEME_CACHE)
    write_theme(e, bench.dist / "themes")
    e_refused = bench.use_theme(e.name)
    e_live = wait_until(lambda: bench.served(e.name))
    write_theme(theme("bench-c", primary="#4a235a"), bench.dist / "themes")
    bench.use_theme(c.name)
    c_live = wait_until(lambda: "#4a235a" in bench.stylesheet(c.name))
    live_text = add_message(bench, c.name, "Bench live sign-in")
    messages_live = wait_until(lambda: live_text in bench.page())
    page_on = timed_pages(bench, c.name)
    bench.stop()
    bench.start()
    page_cached = timed_pages(bench, c.name)

    print("How a new theme reaches a running production Keycloak (one node):")
    row("", "(a) JAR + build", "(b) folder", "(c) folder, no cache")
    row("build", f"{a_build:6.1f} s", "—", "—")
    row("stop", f"{a_stop:6.1f} s", f"{b_stop:6.1f} s", "—")
    row("start until /health/ready", f"{a_start:6.1f} s", f"{b_start:6.1f} s", "—")
    row(
        "downtime (build in place / staged)",
        f"{a_stop + a_build + a_start:5.0f}/{a_stop + a_start:.0f} s",
        f"{b_stop + b_start:6.1f} s",
        "0 s",
    )
    row("new theme served", yes(a_ok, a_refused), yes(b_ok, b_refused), live(e_live, e_refused))
    row("  loginTheme accepted before it is served", "", "", "yes" if not e_refused else "no")
    row("  new theme until served, no restart", "—", seconds(d_live), seconds(e_live))
    row("changed stylesheet, no restart", "—", seconds(c_cached_live), seconds(c_live))
    row(
        "changed message bundle, no restart",
        "—",
        seconds(messages_cached_live),
        seconds(messages_live),
    )
    row(
        "login page, median of 20 (cached / no cache)",
        f"{page_cached:6.1f} ms",
        "",
        f"{page_on:6.1f} ms",
    )
    print(f"\n  first start (no-cache options) until ready: {c_start:.1f} s")
    print(f"  setting loginTheme to a folder theme added live, cache on: {d_refused or 'accepted'}")
    print(
        "  admin API on the internal address without hostname-backchannel-dynamic:",
        admin_without_dynamic,
    )


def add_message(bench: Bench, name: str, text: str) -> str:
    """Override the sign-in title in the folder theme's English bundle, as a changed
    translation would; returns the text to look for."""
    bundle = bench.dist / "themes" / name / "login" / "messages" / "messages_en.properties"
    with bundle.open("a", encoding="utf-8") as handle:
        handle.write(f"\nloginAccountTitle={text}\n")
    return text


def timed_pages(bench: Bench, name: str) -> float:
    samples = []
    for _ in range(20):
        began = time.perf_counter()
        assert bench.served(name)
        samples.append((time.perf_counter() - began) * 1000)
    return sorted(samples)[len(samples) // 2]


def yes(ok: bool, refused: str) -> str:
    return "yes" if ok else f"no ({refused or 'not on the page'})"


def live(waited: float | None, refused: str) -> str:
    if waited is not None:
        return "yes, live"
    return f"no ({refused or 'not on the page'})"


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KC_", "KEYCLOAK_"))}
    cache = KitHome.from_env(env).cache
    with tempfile.TemporaryDirectory(prefix="karmayogi-bench-kc-") as tmp:
        root = Path(tmp)
        dist = install(cache, root / "dist", env=env)
        with running_postgres(root) as postgres:
            bench = Bench(root, dist, postgres, env)
            try:
                run(bench)
            except BaseException:
                print(f"--- last lines of {bench.log} ---", file=sys.stderr)
                print("\n".join(bench.log.read_text().splitlines()[-30:]), file=sys.stderr)
                raise
            finally:
                bench.stop()


if __name__ == "__main__":
    main()
