"""The production round trip: what a state runs, end to end, on its real names over TLS.

Keycloak 26.4.7 built for production on PostgreSQL with the kit's theme JAR (the session's
``production_keycloak``), the rendered realms applied to it, and Bihar's portal with its
rendered production settings on PostgreSQL under gunicorn, behind an nginx TLS proxy at
``https://learn.bihar.test``. Every client resolves the names through the rig and checks
certificates against the rig's CA: Chromium, the portal calling Keycloak, Keycloak calling the
portal. A learner signs in through the realm in Chromium.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from infra.net import free_port
from infra.render.portal import validate_portal_settings
from infra.render.tenant import RenderedTenant, as_environment, reveal
from infra.targets.local.processes import stop_process_group, tail, wait_for_http
from tests.postgres import PostgresServer
from tests.production.conftest import BIHAR_ADDRESS, ProductionServer, Reconciled
from tests.production.tenants import BIHAR_DOMAIN, ProductionTenants, database_name
from tests.rig import CertificateAuthority, NameMap, Route, TlsProxy
from tests.rig.chromium import launch_options, sign_in_at_keycloak
from tests.tenant_portal.browser import TIMEOUT_MS, axe_script

REPO = Path(__file__).resolve().parents[2]
PORTAL_START_TIMEOUT = 180.0


@dataclass(frozen=True)
class Portal:
    url: str  # https://learn.bihar.test
    tenant: RenderedTenant
    env: dict[str, str]
    log: Path


def manage(
    env: dict[str, str], names: NameMap, *args: str, log: Path
) -> subprocess.CompletedProcess[str]:
    """A portal management command as the target runs it: its settings, names and trust."""
    return subprocess.run(
        names.wrap([sys.executable, "-m", "tenant_portal.manage", *args]),
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def portal(
    tmp_path_factory: pytest.TempPathFactory,
    production_tenants: ProductionTenants,
    reconciled: Reconciled,
    postgres: PostgresServer,
    production_names: NameMap,
    rig_ca: CertificateAuthority,
    rig_trust_env: dict[str, str],
) -> Iterator[Portal]:
    """Bihar's portal, prepared and started from its rendered production settings."""
    tenant = production_tenants.tenant("bihar")
    settings = reveal(tenant.portal)
    validate_portal_settings(settings, source="bihar's production settings")
    postgres.create_database(database_name(tenant.code))
    data_dir = Path(str(settings["KARMAYOGI_DATA_DIR"]))
    logo = Path(str(settings["KARMAYOGI_LOGO"]))
    logo.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tenant.spec.logo_path, logo)  # what the target's deploy step does
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KARMAYOGI_", "DJANGO_"))}
    env = base | rig_trust_env | as_environment(settings)
    log = tmp_path_factory.mktemp("bihar-portal") / "portal.log"
    prepared = manage(env, production_names, "prepare_portal", "-v0", log=log)
    assert prepared.returncode == 0, prepared.stderr[-3000:]

    port = free_port(BIHAR_ADDRESS)
    with log.open("ab") as handle:
        process = subprocess.Popen(
            production_names.wrap(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "tenant_portal.wsgi:application",
                    f"--bind={BIHAR_ADDRESS}:{port}",
                    f"--workers={tenant.size.portal_workers}",
                    f"--threads={tenant.size.portal_threads}",
                    "--no-control-socket",
                    "--access-logfile=-",
                ]
            ),
            env=env,
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proxy = TlsProxy(
        log.parent / "proxy",
        [
            Route(
                BIHAR_DOMAIN,
                BIHAR_ADDRESS,
                *rig_ca.issue([BIHAR_DOMAIN]),
                f"http://{BIHAR_ADDRESS}:{port}",
            )
        ],
    )
    try:
        # The probe path answers at the process's own address (tenant_portal/core/probes.py).
        wait_for_http(
            f"http://{BIHAR_ADDRESS}:{port}/healthz",
            name="Bihar's production portal",
            log=log,
            timeout=PORTAL_START_TIMEOUT,
            process=process,
        )
        proxy.start()
        yield Portal(f"https://{BIHAR_DOMAIN}", tenant, env, log)
    finally:
        proxy.stop()
        stop_process_group(process.pid)


def test_the_production_settings_pass_djangos_deployment_checks(
    portal: Portal, production_names: NameMap
) -> None:
    done = manage(
        portal.env, production_names, "check", "--deploy", "--fail-level", "WARNING", log=portal.log
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_the_portal_is_served_over_tls_on_its_name(
    portal: Portal, production_names: NameMap, rig_ca: CertificateAuthority
) -> None:
    with production_names.httpx_client(rig_ca, timeout=30.0) as client:
        home = client.get(f"{portal.url}/", headers={"Accept-Language": "en"})
        assert home.status_code == 200, tail(portal.log)
        assert "Bihar Karmayogi" in home.text
        assert home.headers["strict-transport-security"].startswith("max-age=")
        # Cookies are the portal's alone: host-only and Secure.
        csrf = client.get(f"{portal.url}/courses/").headers.get_list("set-cookie")
        assert all("Domain=" not in c and "Secure" in c for c in csrf)
        ready = client.get(f"{portal.url}/readyz")
        assert ready.json()["checks"] == {"database": "ok", "keycloak": "ok"}


def test_a_learner_signs_in_through_the_realm_in_chromium(
    portal: Portal,
    production_keycloak: ProductionServer,
    reconciled: Reconciled,
    production_names: NameMap,
    rig_chromium_home: Path,
) -> None:
    realm = portal.tenant.code
    password = secrets.token_urlsafe(16)
    reconciled.api.renew_token()
    reconciled.api.post(
        f"/{realm}/users",
        {
            "username": "asha.learner",
            "enabled": True,
            "email": "asha.learner@example.org",
            "emailVerified": True,
            "firstName": "Asha",
            "lastName": "Kumari",
            "credentials": [{"type": "password", "value": password, "temporary": False}],
        },
        "create a learner",
    )
    axe_script()  # makes sure Debian's Chromium and the fonts are installed
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**launch_options(production_names, rig_chromium_home))
        try:
            context = browser.new_context(locale="en-GB")
            context.set_default_timeout(TIMEOUT_MS)
            page: Page = context.new_page()
            page.goto(f"{portal.url}/")
            page.locator('a[href="/auth/authenticate/"]').click()
            page.locator("#kc-form-login").wait_for()
            # Keycloak's login page on its own public name, in Bihar's theme.
            assert page.url.startswith(f"{production_keycloak.hostname}/realms/{realm}/")
            assert re.search(r"/login/karmayogi-bihar-[0-9a-f]+/css/", page.content())
            assert "Asha" in sign_in_at_keycloak(page, "asha.learner", password, portal.url)
            cookies = {c["name"]: c for c in context.cookies(portal.url)}
            session = next(c for n, c in cookies.items() if n.endswith("_session"))
            assert session["secure"] and session["httpOnly"] and session["domain"] == BIHAR_DOMAIN
        finally:
            browser.close()
