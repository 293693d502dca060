"""The CLI on the real Keycloak: status, plan, apply, drift, destroy, themes and `up`."""

from __future__ import annotations

import json
import re
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page
from typer.testing import CliRunner

from identity.themes import theme_name
from infra.cli import app
from infra.home import KitHome, read_json
from infra.keycloak.production import DEFAULT_BOOTSTRAP_CLIENT_ID
from infra.targets.local.federation import stop_syncer, syncer_pid
from infra.targets.local.keycloak import LocalKeycloak
from infra.targets.local.portals import stop_portal
from infra.targets.local.render import portal_env_path
from infra.targets.local.runtime import admin_api
from tests.identity.browser import Client, browser_session, form_action, login_page, visible_text
from tests.infra.examples import example_folder
from tests.tenant_portal.browser import (
    axe_violations,
    chromium_fixture,  # noqa: F401 (fixture)
    describe,
    open_sign_in,
    page_fixture,  # noqa: F401 (fixture)
    submit_login_form,
    switch_language,
)


@pytest.fixture
def tenants_dir(tmp_path: Path, kit_env: dict[str, str]) -> Iterator[Path]:
    """The example hub and Bihar under fresh codes, so realms never collide between tests;
    afterwards, whatever a failed test left running of theirs (`up` starts portals and the
    syncer) is stopped."""
    folder = tmp_path / "tenants"
    example_folder(folder, uuid.uuid4().hex[:6], ("karmayogi-bharat", "bihar"))
    yield folder
    home = KitHome.from_env(kit_env)
    stop_syncer(home)
    for code in codes(folder):
        stop_portal(code, home)


def codes(folder: Path) -> tuple[str, str]:
    hub = next(p.stem for p in folder.glob("karmayogi-*.yaml"))
    state = next(p.stem for p in folder.glob("bihar-*.yaml"))
    return hub, state


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


def test_keycloak_status_json(keycloak: LocalKeycloak, kit_env: dict[str, str]) -> None:
    code, out, _ = run(kit_env, "keycloak", "status", "--json")
    status = json.loads(out)
    assert code == 0
    assert set(status) == {
        "url",
        "management_url",
        "version",
        "pid",
        "healthy",
        "admin_credentials_file",
    }
    assert status["healthy"] is True and status["pid"] == keycloak.running_pid()
    assert status["version"] == "26.4.7"
    creds_file = Path(status["admin_credentials_file"])
    assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
    creds = json.loads(creds_file.read_text())
    assert set(creds) == {"username", "password"}
    # A password alone opens no admin API in master: admin-cli refuses the password grant
    # (the operator signs in to the console through its browser flow, test_local_hardening).
    refused = httpx.post(
        f"{status['url']}/realms/master/protocol/openid-connect/token",
        data={"grant_type": "password", "client_id": "admin-cli", **creds},
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "unauthorized_client"
    # The temporary bootstrap client is gone; the reconciler's service account remains.
    account = keycloak.service_account()
    token = httpx.post(
        f"{status['url']}/realms/master/protocol/openid-connect/token",
        data={
            "grant_type": "client_credentials",
            "client_id": account.client_id,
            "client_secret": account.client_secret,
        },
    )
    assert token.status_code == 200
    clients = httpx.get(
        f"{status['url']}/admin/realms/master/clients",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
    ).json()
    assert DEFAULT_BOOTSTRAP_CLIENT_ID not in {c["clientId"] for c in clients}


def test_plan_apply_drift_destroy_through_the_cli(
    keycloak: LocalKeycloak, kit_env: dict[str, str], tenants_dir: Path
) -> None:
    hub, state = codes(tenants_dir)
    folder = str(tenants_dir)
    code, out, _ = run(kit_env, "identity", "plan", "--json", "--tenants", folder)
    planned = json.loads(out)
    assert code == 0
    assert {(c["action"], c["kind"], c["realm"], c["name"]) for c in planned} >= {
        ("create", "realm", hub, hub),
        ("create", "realm", state, state),
        ("create", "client", hub, f"broker-{state}"),
        ("create", "client", hub, f"federation-{state}"),
        ("create", "idp", state, hub),
    }
    assert "secret" not in out.lower().replace("secret_fields", "")

    code, out, _ = run(kit_env, "identity", "apply", "--tenants", folder)
    assert code == 0, out
    code, out, _ = run(kit_env, "identity", "plan", "--json", "--tenants", folder)
    assert (code, json.loads(out)) == (0, [])
    code, out, _ = run(kit_env, "identity", "drift", "--tenants", folder)
    assert code == 0 and "No changes" in out

    # An operator turns off brute-force protection in Bihar's realm by hand.
    admin = LocalKeycloak(KitHome.from_env(kit_env), kit_env)

    admin_api(admin).put(f"/{state}", {"bruteForceProtected": False}, "tamper")
    code, out, _ = run(kit_env, "identity", "drift", "--json", "--tenants", folder)
    drift = json.loads(out)
    assert code == 2
    assert [(c["realm"], [f["path"] for f in c["fields"]]) for c in drift] == [
        (state, ["bruteForceProtected"])
    ]
    code, out, _ = run(kit_env, "identity", "apply", "--tenants", folder)
    assert code == 0
    assert run(kit_env, "identity", "drift", "--tenants", folder)[0] == 0

    code, out, _ = run(kit_env, "identity", "destroy", state, "--yes", "--tenants", folder)
    assert code == 0
    assert f"realm {state}" in out and f"client {hub}/federation-{state}" in out
    # The hub is whole: its plan is empty, and Bihar's realm would be created anew.
    code, out, _ = run(kit_env, "identity", "plan", "--json", hub, "--tenants", folder)
    assert json.loads(out) == []
    run(kit_env, "identity", "destroy", hub, "--yes", "--tenants", folder)


def test_login_theme_is_served_and_its_drift_repaired(
    keycloak: LocalKeycloak, kit_env: dict[str, str], tenants_dir: Path
) -> None:
    hub, state = codes(tenants_dir)
    folder = str(tenants_dir)
    assert run(kit_env, "identity", "apply", state, hub, "--tenants", folder)[0] == 0
    page = login_page(
        Client(
            keycloak.url,
            state,
            "account-console",
            "",
            f"{keycloak.url}/realms/{state}/account/",
        ),
        ui_locales="hi",
    )
    assert page.status_code == 200
    assert '<html class="login-pf" lang="hi"' in page.text
    assert "<title>Bihar Karmayogi में साइन इन करें</title>" in page.text
    assert "पासवर्ड" in page.text and "मैथिली" in page.text
    css = re.search(rf'href="([^"]*/login/{theme_name(state)}/css/karmayogi.css)"', page.text)
    assert css, "the tenant's stylesheet is linked"
    sheet = httpx.get(f"{keycloak.url}{css.group(1)}")
    assert sheet.status_code == 200 and "#8b1e3f" in sheet.text
    # The hub's button sits on Bihar's login page.
    assert f"/broker/{hub}/login" in page.text and "Karmayogi Bharat" in page.text

    theme_css = KitHome.from_env(kit_env).themes / theme_name(state) / "login"
    stylesheet = theme_css / "resources" / "css" / "karmayogi.css"
    stylesheet.write_text("/* edited by hand */", encoding="utf-8")
    code, out, _ = run(kit_env, "identity", "drift", "--json", state, "--tenants", folder)
    assert code == 2
    assert [c["kind"] for c in json.loads(out)] == ["theme"]
    assert run(kit_env, "identity", "apply", state, "--tenants", folder)[0] == 0
    assert "#8b1e3f" in stylesheet.read_text(encoding="utf-8")
    for code_ in (state, hub):
        run(kit_env, "identity", "destroy", code_, "--yes", "--tenants", folder)
    assert not (KitHome.from_env(kit_env).themes / theme_name(state)).exists()


def test_up_runs_every_portal_and_a_learner_signs_in(
    keycloak: LocalKeycloak, kit_env: dict[str, str], tenants_dir: Path, page: Page
) -> None:
    hub, state = codes(tenants_dir)
    folder = str(tenants_dir)
    home = KitHome.from_env(kit_env)
    code, out, err = run(kit_env, "up", "--tenants", folder)
    assert code == 0, err
    assert f"{keycloak.url}/admin/master/console/" in out
    assert run(kit_env, "identity", "plan", "--json", "--tenants", folder)[1].strip() == "[]"

    code, out, _ = run(kit_env, "status", "--json", "--tenants", folder)
    status = json.loads(out)
    assert code == 0
    assert status["keycloak"]["healthy"] is True
    rows = {t["code"]: t for t in status["tenants"]}
    assert set(rows) == {state, hub}
    for tenant_code, kind in ((state, "state"), (hub, "hub")):
        row = rows[tenant_code]
        assert (row["type"], row["realm"], row["healthy"]) == (kind, tenant_code, True)
        network = kit_env["KARMAYOGI_LOCAL_ADDRESS"].rsplit(".", 1)[0]  # this worker's homes
        assert isinstance(row["pid"], int) and row["portal_url"].startswith(f"http://{network}.")
        assert row["portal_url"] in out
    # Each portal answers on its own loopback address, branded from its spec.
    state_url, hub_url = rows[state]["portal_url"], rows[hub]["portal_url"]
    assert httpx.URL(state_url).host != httpx.URL(hub_url).host
    home_page = httpx.get(f"{state_url}/", headers={"Accept-Language": "en"})
    assert home_page.status_code == 200 and "Bihar Karmayogi" in home_page.text
    assert "Sign in with Karmayogi Bharat" in home_page.text
    # With no preference the portal speaks the tenant's first language, Hindi.
    assert "Karmayogi Bharat के माध्यम से साइन इन करें" in httpx.get(f"{state_url}/").text
    assert httpx.get(f"{state_url}/readyz").json()["checks"] == {"database": "ok", "keycloak": "ok"}
    secrets = read_json(home.secrets / f"tenant-{state}.json")
    assert secrets and secrets["portal_client_secret"] not in out
    # Department reports are titled with the spec's names.
    rendered = read_json(portal_env_path(state, home)) or {}
    assert json.loads(rendered["KARMAYOGI_DEPARTMENTS"])["health"] == "Health Department"
    # `up` seeded each new portal (tenants without seed files of their own get ten of the
    # hub's courses under their own name), then ran a federation round: the hub pulled the
    # state's ten, the state pulled the hub's. Seeding again duplicates nothing.
    for url in (state_url, hub_url):
        catalogue = httpx.get(f"{url}/courses/", headers={"Accept-Language": "en"})
        assert catalogue.status_code == 200 and "20 courses" in catalogue.text
    assert run(kit_env, "seed", state)[0] == 0
    assert run(kit_env, "federation", "sync", state)[0] == 0
    catalogue = httpx.get(f"{state_url}/courses/?again=1", headers={"Accept-Language": "en"})
    assert "20 courses" in catalogue.text
    code, out, _ = run(kit_env, "federation", "status", "--json", "--tenants", folder)
    federation = json.loads(out)
    assert code == 0, out
    assert federation[state]["peers"][0]["peer"] == hub
    assert federation[state]["peers"][0]["lag"] == 0 and federation[hub]["feed"]["changes"] == 20

    # A learner signs in to Bihar's portal through Bihar's realm.
    api = admin_api(LocalKeycloak(home, kit_env))
    api.post(
        f"/{state}/users",
        {
            "username": "priya.learner",
            "enabled": True,
            "email": "priya@example.org",
            "emailVerified": True,
            "firstName": "Priya",
            "lastName": "Kumari",
            "credentials": [{"type": "password", "value": "correct-horse-42!", "temporary": False}],
        },
        "create learner",
    )
    with browser_session() as session:
        session.headers["Accept-Language"] = "en"
        login = session.get(f"{state_url}/auth/authenticate/", follow_redirects=True)
        assert f"/realms/{state}/" in str(login.url)
        landed = session.post(
            form_action(login.text),
            data={"username": "priya.learner", "password": "correct-horse-42!"},
            follow_redirects=True,
        )
        assert str(landed.url).startswith(state_url)
        assert "Signed in as Priya Kumari" in visible_text(landed.text)
        # Bihar's session is Bihar's: the hub's portal, on its own address, does not know it,
        # even when the cookie is replayed under the hub portal's own cookie name.
        cookie = next(c for c in session.cookies.jar if c.name.endswith("_session"))
        assert 'class="signed-in-as"' not in session.get(f"{hub_url}/").text
        hub_cookie = cookie.name.replace(state.replace("-", "_"), hub.replace("-", "_"))
        replayed = httpx.get(f"{hub_url}/", cookies={hub_cookie: cookie.value})
        assert 'class="signed-in-as"' not in replayed.text
        assert 'href="/auth/authenticate/"' in replayed.text

    # The same in Chromium: Bihar's branded login page, Hindi through to Keycloak, and the
    # hub's portal in the same browser still signed out, with the hub's own login page.
    page.goto(f"{state_url}/")
    switch_language(page, "hi")
    open_sign_in(page, state_url)
    assert page.title() == "Bihar Karmayogi में साइन इन करें"
    assert page.locator("html").get_attribute("lang") == "hi"
    login_violations = axe_violations(page)
    assert not login_violations, describe(login_violations)
    submit_login_form(page, "priya.learner", "correct-horse-42!")
    page.wait_for_url(f"{state_url}/")
    assert page.locator(".signed-in-as").inner_text() == "आप Priya Kumari के रूप में साइन इन हैं"
    page.goto(f"{hub_url}/")
    assert page.locator(".signed-in-as").count() == 0
    open_sign_in(page, hub_url)
    assert f"/realms/{hub}/" in page.url
    assert "Karmayogi Bharat" in page.title()

    syncer = syncer_pid(home)
    assert syncer is not None and stop_syncer(home) is True
    assert not Path(f"/proc/{syncer}").exists()
    for tenant_code in (state, hub):
        pid = rows[tenant_code]["pid"]
        assert stop_portal(tenant_code, home) is True
        assert not Path(f"/proc/{pid}").exists()
        run(kit_env, "identity", "destroy", tenant_code, "--yes", "--tenants", folder)


def test_spec_error_stops_identity_commands_before_keycloak(
    kit_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "broken.yaml").write_text(
        "apiVersion: karmayogi.dev/v1\nkind: Tenant\n", encoding="utf-8"
    )
    code, out, err = run(kit_env, "identity", "apply", "--tenants", str(tmp_path))
    assert code == 1 and out == ""
    assert err.startswith(f"{tmp_path / 'broken.yaml'}:")
