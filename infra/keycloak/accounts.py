"""The kit's accounts in Keycloak's master realm: a permanent operator admin and the
reconciler's service account, made once on a fresh server, after which the temporary
bootstrap admin goes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from infra.keycloak.release import KeycloakRuntimeError

ADMIN_USERNAME = "karmayogi-admin"
RECONCILER_CLIENT_ID = "karmayogi-reconciler"


@dataclass(frozen=True)
class ServiceAccount:
    """Client credentials of the reconciler's service account in the master realm."""

    server_url: str
    client_id: str
    client_secret: str


@contextlib.contextmanager
def admin_session(url: str, username: str, password: str) -> Iterator[httpx.Client]:
    """An httpx client authenticated as a master-realm user (bootstrap only)."""
    response = httpx.post(
        f"{url}/realms/master/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": "admin-cli",
            "username": username,
            "password": password,
        },
        timeout=30.0,
    )
    if response.status_code != 200:
        raise KeycloakRuntimeError(
            f"the bootstrap admin could not sign in to Keycloak (HTTP {response.status_code})"
        )
    token = response.json()["access_token"]
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
    ) as client:
        yield client


def check(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code >= 400:
        raise KeycloakRuntimeError(f"could not {what}: HTTP {response.status_code}")
    return response


def get(client: httpx.Client, path: str, **params: str) -> Any:
    return check(client.get(path, params=params), f"read {path}").json()


def ensure_user(admin: httpx.Client, username: str) -> str:
    for user in get(admin, "/admin/realms/master/users", username=username, exact="true"):
        return str(user["id"])
    check(
        admin.post("/admin/realms/master/users", json={"username": username, "enabled": True}),
        f"create the master user {username}",
    )
    return str(get(admin, "/admin/realms/master/users", username=username, exact="true")[0]["id"])


def ensure_reconciler_client(admin: httpx.Client, admin_role: dict[str, Any]) -> str:
    found = get(admin, "/admin/realms/master/clients", clientId=RECONCILER_CLIENT_ID)
    if not found:
        check(
            admin.post(
                "/admin/realms/master/clients",
                json={
                    "clientId": RECONCILER_CLIENT_ID,
                    "name": "Karmayogi kit reconciler",
                    "description": "Service account the kit's identity reconciler signs in as",
                    "protocol": "openid-connect",
                    "publicClient": False,
                    "serviceAccountsEnabled": True,
                    "standardFlowEnabled": False,
                    "directAccessGrantsEnabled": False,
                    # An admin token otherwise lists every realm's roles and grows with each
                    # realm created (keycloak#26883).
                    "attributes": {"client.use.lightweight.access.token.enabled": "true"},
                },
            ),
            "create the reconciler's client",
        )
        found = get(admin, "/admin/realms/master/clients", clientId=RECONCILER_CLIENT_ID)
    client_uuid = found[0]["id"]
    account = get(admin, f"/admin/realms/master/clients/{client_uuid}/service-account-user")
    check(
        admin.post(
            f"/admin/realms/master/users/{account['id']}/role-mappings/realm", json=[admin_role]
        ),
        "grant the reconciler the admin role",
    )
    secret = get(admin, f"/admin/realms/master/clients/{client_uuid}/client-secret")
    return str(secret["value"])
