"""The production bootstrap: the temporary client replaced by the kit's permanent accounts."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from identity.admin import AdminAPI, Credentials
from infra.keycloak.accounts import (
    MASTER_BRUTE_FORCE,
    bootstrap_operator_accounts,
    client_token,
    token_session,
)
from infra.keycloak.production import SECRET_OPTIONS
from infra.keycloak.release import KeycloakRuntimeError
from tests.keycloak_console import console_sign_in
from tests.production.conftest import ProductionServer
from tests.rig import CertificateAuthority, NameMap


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def master_snapshot(server: ProductionServer) -> dict[str, Any]:
    """What a bootstrap could change in the master realm: settings, clients, users."""
    reconciler = server.reconciler
    token = client_token(server.url, reconciler.client_id, reconciler.client_secret)
    assert token is not None
    with token_session(server.url, token) as admin:
        return {
            path: admin.get(path).json()
            for path in (
                "/admin/realms/master",
                "/admin/realms/master/clients",
                "/admin/realms/master/users",
            )
        }


def test_the_bootstrap_client_is_gone(production_keycloak: ProductionServer) -> None:
    server = production_keycloak
    assert (
        client_token(server.url, server.bootstrap_client_id, server.bootstrap_client_secret) is None
    )
    clients = master_snapshot(server)["/admin/realms/master/clients"]
    assert server.bootstrap_client_id not in {c["clientId"] for c in clients}


def test_the_reconciler_signs_in_with_client_credentials(
    production_keycloak: ProductionServer,
) -> None:
    server = production_keycloak
    reconciler = server.reconciler
    api = AdminAPI(
        Credentials(reconciler.server_url, reconciler.client_id, reconciler.client_secret)
    )
    assert api.get("/master", "master realm")["realm"] == "master"
    token = client_token(server.url, reconciler.client_id, reconciler.client_secret)
    assert token is not None
    # Tokens name the public hostname as issuer even when fetched at the internal address,
    # and the admin API on the internal address accepts them.
    assert claims(token)["iss"] == f"{server.hostname}/realms/master"


def test_the_operator_admin_signs_in_to_the_console_and_nowhere_else(
    production_keycloak: ProductionServer,
    production_names: NameMap,
    rig_ca: CertificateAuthority,
) -> None:
    server, accounts = production_keycloak, production_keycloak.accounts
    # A password alone opens no admin API: admin-cli refuses the password grant.
    refused = httpx.post(
        f"{server.url}/realms/master/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": "admin-cli",
            "username": accounts.admin_username,
            "password": accounts.admin_password,
        },
    )
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
    # The operator signs in to the console as a person does, on the public name over TLS.
    token = console_sign_in(
        server.hostname,
        accounts.admin_username,
        accounts.admin_password,
        production_names.httpx_client(rig_ca, timeout=30.0),
    )
    assert token.status_code == 200, token.text
    with production_names.httpx_client(rig_ca, timeout=30.0) as console:
        roles = console.get(
            f"{server.hostname}/admin/realms/master/roles/admin/users",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )
    assert accounts.admin_username in {user["username"] for user in roles.json()}


def test_the_master_realm_is_protected_from_brute_force(
    production_keycloak: ProductionServer,
) -> None:
    realm = master_snapshot(production_keycloak)["/admin/realms/master"]
    assert {key: realm[key] for key in MASTER_BRUTE_FORCE} == MASTER_BRUTE_FORCE


def test_a_second_bootstrap_changes_nothing(production_keycloak: ProductionServer) -> None:
    server = production_keycloak
    before = master_snapshot(server)
    again = bootstrap_operator_accounts(
        server.url,
        server.bootstrap_client_id,
        server.bootstrap_client_secret,
        existing=server.accounts,
    )
    assert again == server.accounts
    assert master_snapshot(server) == before
    # Without the stored accounts it says what to do instead of making new ones.
    with pytest.raises(KeycloakRuntimeError, match="secret store"):
        bootstrap_operator_accounts(
            server.url, server.bootstrap_client_id, server.bootstrap_client_secret
        )
    assert master_snapshot(server) == before


def test_the_rendered_conf_holds_no_secret(production_keycloak: ProductionServer) -> None:
    conf = production_keycloak.conf
    for secret in (production_keycloak.db_password, production_keycloak.bootstrap_client_secret):
        assert secret not in conf
    keys = {line.split("=", 1)[0] for line in conf.splitlines() if line and line[0] != "#"}
    assert not keys & SECRET_OPTIONS
    written = (production_keycloak.dist / "conf" / "keycloak.conf").read_text()
    assert written == conf


def test_discovery_at_the_internal_address(production_keycloak: ProductionServer) -> None:
    """hostname-backchannel-dynamic: a portal reading discovery at the internal address keeps
    the public issuer and browser endpoints, and calls token/jwks on the internal address."""
    server = production_keycloak
    found = httpx.get(f"{server.url}/realms/master/.well-known/openid-configuration").json()
    assert found["issuer"] == f"{server.hostname}/realms/master"
    assert found["authorization_endpoint"].startswith(f"{server.hostname}/realms/master/")
    assert found["token_endpoint"].startswith(f"{server.url}/realms/master/")
    assert found["jwks_uri"].startswith(f"{server.url}/realms/master/")
