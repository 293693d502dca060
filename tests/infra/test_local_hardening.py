"""The local target's hardening (issue "Hardening", item 7): the master realm bootstrapped with
a client, guarded by brute-force protection and refusing admin-cli's password grant; the
kit's state private to the operator; no authorisation code in the access log; no password
form at /admin/login/.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from django.test import Client
from django.urls import NoReverseMatch, reverse

from infra.home import KitHome, read_json
from infra.keycloak.accounts import (
    MASTER_BRUTE_FORCE,
    RECONCILER_CLIENT_ID,
    client_token,
    get,
    token_session,
)
from infra.keycloak.production import DEFAULT_BOOTSTRAP_CLIENT_ID
from infra.spec import TenantSpec, load_specs
from infra.targets.local.keycloak import LocalKeycloak
from infra.targets.local.portals import log_path, start_portal, stop_portal
from tests.infra.examples import example_folder
from tests.keycloak_console import console_sign_in
from tests.rig.names import local_address_env


def token_endpoint(url: str) -> str:
    return f"{url}/realms/master/protocol/openid-connect/token"


def operator(keycloak: LocalKeycloak) -> dict[str, str]:
    status = keycloak.status()
    assert status.admin_credentials_file is not None
    path = Path(status.admin_credentials_file)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    creds = read_json(path) or {}
    assert set(creds) == {"username", "password"}
    return {k: str(v) for k, v in creds.items()}


def reconciler_session(keycloak: LocalKeycloak) -> httpx.Client:
    account = keycloak.service_account()
    token = client_token(account.server_url, account.client_id, account.client_secret)
    assert token is not None
    return httpx.Client(
        base_url=keycloak.url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
    )


def admin_cli(admin: httpx.Client) -> dict[str, object]:
    found = get(admin, "/admin/realms/master/clients", clientId="admin-cli")
    assert len(found) == 1
    return dict(found[0])


def opened_to_others(root: Path) -> list[str]:
    """Files and folders under ``root`` (itself included) that group or others may use."""
    found = []
    for folder, _dirs, files in os.walk(root):
        for name in (folder, *(os.path.join(folder, f) for f in files)):
            mode = os.lstat(name).st_mode
            if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
                found.append(f"{oct(stat.S_IMODE(mode))} {name}")
    return found


# --- the master realm ---------------------------------------------------------------------


def assert_master_hardened(keycloak: LocalKeycloak) -> None:
    with reconciler_session(keycloak) as admin:
        realm = get(admin, "/admin/realms/master")
        assert {key: realm[key] for key in MASTER_BRUTE_FORCE} == MASTER_BRUTE_FORCE
        assert admin_cli(admin)["directAccessGrantsEnabled"] is False
    # The operator's right password, given to admin-cli, opens nothing.
    refused = httpx.post(
        token_endpoint(keycloak.url),
        data={"grant_type": "password", "client_id": "admin-cli", **operator(keycloak)},
    )
    assert refused.status_code in (400, 401), refused.text
    assert refused.json()["error"] == "unauthorized_client"


@pytest.mark.keycloak
def test_the_master_realm_is_bootstrapped_with_a_client_and_hardened(
    keycloak: LocalKeycloak,
) -> None:
    assert_master_hardened(keycloak)
    paths = keycloak.paths
    assert not paths.bootstrap_credentials.exists()
    with reconciler_session(keycloak) as admin:
        clients = {c["clientId"] for c in get(admin, "/admin/realms/master/clients")}
        users = {u["username"] for u in get(admin, "/admin/realms/master/users")}
    assert RECONCILER_CLIENT_ID in clients
    assert not {c for c in clients if c.startswith(DEFAULT_BOOTSTRAP_CLIENT_ID)}
    # No bootstrap user was ever made (the old bootstrap's were named bootstrap-…).
    assert not {u for u in users if u.startswith("bootstrap")}
    assert operator(keycloak)["username"] in users


@pytest.mark.keycloak
def test_the_operator_still_signs_in_to_the_console_with_a_password(
    keycloak: LocalKeycloak,
) -> None:
    creds = operator(keycloak)
    token = console_sign_in(keycloak.url, creds["username"], creds["password"])
    assert token.status_code == 200, token.text
    access, identity = token.json()["access_token"], token.json()["id_token"]
    payload = identity.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["preferred_username"] == creds["username"]
    assert claims["azp"] == "security-admin-console"
    # What the console then calls works with that token.
    with token_session(keycloak.url, access) as console:
        whoami = console.get("/admin/master/console/whoami", params={"currentRealm": "master"})
        assert whoami.status_code == 200, whoami.text
        assert console.get("/admin/realms/master/users", params={"max": "1"}).status_code == 200


@pytest.mark.keycloak
def test_a_home_an_older_kit_bootstrapped_is_hardened_on_its_next_start(
    keycloak: LocalKeycloak,
) -> None:
    """An older kit's home: the accounts exist, but master has no brute-force protection and
    admin-cli takes passwords. The next start (what `karmayogi up` runs) hardens it."""
    with reconciler_session(keycloak) as admin:
        admin.put("/admin/realms/master", json={"bruteForceProtected": False}).raise_for_status()
        cli = admin_cli(admin)
        admin.put(
            f"/admin/realms/master/clients/{cli['id']}",
            json={"clientId": "admin-cli", "directAccessGrantsEnabled": True},
        ).raise_for_status()
    before = {p: p.read_bytes() for p in (keycloak.paths.admin_credentials,)}
    keycloak.start()
    assert_master_hardened(keycloak)
    # The operator's accounts were kept as they were.
    assert {p: p.read_bytes() for p in before} == before


@pytest.mark.keycloak
def test_keycloak_s_store_log_and_secrets_are_private(
    keycloak: LocalKeycloak, kit_home: KitHome
) -> None:
    paths = keycloak.paths
    assert list(paths.store.rglob("*")), "Keycloak's dev-file store is where the kit looks"
    assert stat.S_IMODE(kit_home.keycloak.stat().st_mode) == 0o700
    for root in (paths.store, kit_home.secrets):
        assert opened_to_others(root) == []
    assert stat.S_IMODE(paths.log.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.log.parent.stat().st_mode) == 0o700


# --- a portal the kit starts ---------------------------------------------------------------


@dataclass(frozen=True)
class Portal:
    home: KitHome
    spec: TenantSpec
    url: str


@pytest.fixture(scope="module")
def portal(keycloak: LocalKeycloak, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """One portal started by the kit's own functions in a home of its own, whose folder was
    made with the usual umask 022 (as `mkdir ~/.karmayogi` would)."""
    folder = tmp_path_factory.mktemp("hardening-tenants") / "tenants"
    example_folder(folder, uuid.uuid4().hex[:5], names=("karmayogi-bharat",))
    specs = load_specs([folder])
    root = tmp_path_factory.mktemp("hardening-home") / "home"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    home = KitHome(root=root, cache=KitHome.from_env().cache)
    env = {**os.environ, **local_address_env()}
    status = start_portal(specs[0], specs, home, keycloak.url, env)
    assert status.healthy and status.url
    try:
        yield Portal(home, specs[0], status.url)
    finally:
        stop_portal(specs[0].code, home)


def test_the_access_log_holds_no_authorisation_code(portal: Portal) -> None:
    code, state = secrets.token_urlsafe(16), secrets.token_urlsafe(8)
    httpx.get(
        f"{portal.url}/auth/callback/",
        params={"code": code, "state": state, "session_state": "s"},
        headers={"Referer": f"{portal.url}/auth/callback/?code={code}"},
    )
    httpx.get(f"{portal.url}/healthz", params={"code": code})
    log = log_path(portal.spec.code, portal.home).read_text(encoding="utf-8")
    assert '"GET /auth/callback/ HTTP/1.1" ' in log, log[-2000:]
    assert "code=" not in log and code not in log and state not in log


def test_the_portal_s_home_is_private(portal: Portal) -> None:
    data = portal.home.root / "portals" / portal.spec.code
    assert (data / "portal.sqlite3").is_file()
    assert log_path(portal.spec.code, portal.home).is_file()
    # A request that writes (a session), so SQLite has had to write beside the database.
    httpx.get(f"{portal.url}/auth/authenticate/")
    assert opened_to_others(portal.home.root) == []


def test_admin_login_of_a_running_portal_leads_to_the_oidc_sign_in(portal: Portal) -> None:
    response = httpx.get(f"{portal.url}/admin/login/", params={"next": "/admin/pages/"})
    assert response.status_code == 302
    assert response.headers["location"] == "/auth/authenticate/?next=%2Fadmin%2Fpages%2F"


# --- /admin/login/ ------------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_login_is_the_oidc_sign_in_not_a_password_form(client: Client) -> None:
    sign_in = reverse("oidc_authentication_init")
    response = client.get("/admin/login/", {"next": "/admin/pages/"})
    assert response.status_code == 302
    assert response["Location"] == f"{sign_in}?next=%2Fadmin%2Fpages%2F"
    # Without `next`, the admin's home is where the sign-in returns.
    assert client.get("/admin/login/")["Location"] == f"{sign_in}?next=%2Fadmin%2F"
    # A password posted to the old form signs nobody in.
    posted = client.post("/admin/login/", {"username": "admin", "password": "guess"})
    assert posted.status_code == 302 and posted["Location"].startswith(sign_in)
    assert "_auth_user_id" not in client.session
    # Wagtail sends the signed-out to the same place.
    assert client.get("/admin/")["Location"].startswith(f"{sign_in}?next=")
    # Django's own admin is not mounted: it has no password form to show.
    with pytest.raises(NoReverseMatch):
        reverse("admin:login")
