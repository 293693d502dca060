"""The kit's accounts in Keycloak's master realm: a permanent operator admin and the
reconciler's service account, made once on a fresh server, after which the temporary
bootstrap admin goes.

On every target the bootstrap admin is a temporary service-account client
(``KC_BOOTSTRAP_ADMIN_CLIENT_*``), never a user signing in with a password, and
:func:`bootstrap_operator_accounts` replaces it and turns on brute-force protection in the
master realm. The local target also refuses ``admin-cli``'s password grant there.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from infra.home import new_password
from infra.keycloak.release import KeycloakRuntimeError

ADMIN_USERNAME = "karmayogi-admin"
RECONCILER_CLIENT_ID = "karmayogi-reconciler"
ADMIN_CLI = "admin-cli"
# The master realm guards its administrators' passwords as the tenant realms guard theirs.
MASTER_BRUTE_FORCE = {
    "bruteForceProtected": True,
    "permanentLockout": False,
    "failureFactor": 5,
    "waitIncrementSeconds": 60,
    "maxFailureWaitSeconds": 900,
}

Verify = ssl.SSLContext | str | bool


@dataclass(frozen=True)
class ServiceAccount:
    """Client credentials of the reconciler's service account in the master realm."""

    server_url: str
    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class OperatorAccounts:
    """The permanent accounts of a production Keycloak, kept in the target's secret store."""

    admin_username: str
    admin_password: str = field(repr=False)
    reconciler: ServiceAccount


@contextlib.contextmanager
def admin_session(
    url: str, username: str, password: str, *, verify: Verify = True
) -> Iterator[httpx.Client]:
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
        verify=verify,
    )
    if response.status_code != 200:
        raise KeycloakRuntimeError(
            f"the bootstrap admin could not sign in to Keycloak (HTTP {response.status_code})"
        )
    token = response.json()["access_token"]
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0, verify=verify
    ) as client:
        yield client


def client_token(
    url: str, client_id: str, client_secret: str, *, verify: Verify = True
) -> str | None:
    """An access token for a master-realm client (client credentials), None if refused."""
    try:
        response = httpx.post(
            f"{url}/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
            },
            timeout=30.0,
            verify=verify,
        )
    except httpx.HTTPError as exc:
        raise KeycloakRuntimeError(f"cannot reach Keycloak at {url}: {exc}") from None
    if response.status_code in (400, 401):
        return None
    check(response, f"sign in to Keycloak at {url} as {client_id}")
    return str(response.json()["access_token"])


@contextlib.contextmanager
def token_session(url: str, token: str, *, verify: Verify = True) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0, verify=verify
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


def ensure_operator_admin(admin: httpx.Client, admin_role: dict[str, Any], password: str) -> None:
    """The permanent operator admin exists, holds the admin role and has ``password``."""
    user_id = ensure_user(admin, ADMIN_USERNAME)
    check(
        admin.put(
            f"/admin/realms/master/users/{user_id}/reset-password",
            json={"type": "password", "value": password, "temporary": False},
        ),
        "set the operator admin's password",
    )
    check(
        admin.post(f"/admin/realms/master/users/{user_id}/role-mappings/realm", json=[admin_role]),
        "grant the operator admin the admin role",
    )


def ensure_master_brute_force(admin: httpx.Client) -> bool:
    """Brute-force protection on in the master realm; True if it had to be changed."""
    realm = get(admin, "/admin/realms/master")
    if all(realm.get(key) == value for key, value in MASTER_BRUTE_FORCE.items()):
        return False
    check(
        admin.put("/admin/realms/master", json=MASTER_BRUTE_FORCE),
        "turn on brute-force protection in the master realm",
    )
    return True


def ensure_admin_cli_without_password_grant(admin: httpx.Client) -> bool:
    """``admin-cli`` in the master realm takes no direct (password) grant; True if it had to
    be changed.

    A password alone then opens no admin API, whatever brute-force protection lets through
    between lockouts. The admin console is unaffected: it signs in through the browser flow
    as ``security-admin-console``. What stops working is a password given to ``admin-cli``
    (``kcadm.sh config credentials --user``, python-keycloak with a username): give those a
    client and secret instead.
    """
    found = get(admin, "/admin/realms/master/clients", clientId=ADMIN_CLI)
    changed = False
    for client in found:
        if client.get("directAccessGrantsEnabled") is False:
            continue
        check(
            admin.put(
                f"/admin/realms/master/clients/{client['id']}",
                json={"clientId": ADMIN_CLI, "directAccessGrantsEnabled": False},
            ),
            "refuse admin-cli's password grant in the master realm",
        )
        changed = True
    return changed


def remove_client(admin: httpx.Client, client_id: str) -> bool:
    """Delete a master-realm client (and its service-account user); True if there was one."""
    found = get(admin, "/admin/realms/master/clients", clientId=client_id)
    for client in found:
        check(
            admin.delete(f"/admin/realms/master/clients/{client['id']}"),
            f"remove the master client {client_id}",
        )
    return bool(found)


def bootstrap_operator_accounts(
    url: str,
    bootstrap_client_id: str,
    bootstrap_client_secret: str,
    *,
    verify: Verify = True,
    existing: OperatorAccounts | None = None,
    store: Callable[[OperatorAccounts], None] | None = None,
) -> OperatorAccounts:
    """Replace a Keycloak's temporary bootstrap client with the kit's accounts.

    Signed in as the bootstrap client (client credentials), it makes the operator admin (a
    new random password) and the reconciler's service-account client and turns on
    brute-force protection in the master realm and turns off ``admin-cli``'s password grant
    there (a password alone opens no admin API; the operator signs in to the console through
    its browser flow); ``store`` is then given the accounts
    to keep, before the reconciler, not the bootstrap client itself, deletes the bootstrap
    client, so an interruption never leaves accounts nobody knows.

    Run again with ``existing`` (the accounts the target's secret store kept), it needs no
    bootstrap client: it checks the reconciler can sign in, finishes what an interrupted run
    left (brute-force protection, a bootstrap client still there) and changes nothing else.
    A run interrupted before the accounts were stored can be repeated without ``existing``
    while the bootstrap client still exists: the admin gets a new password, the reconciler's
    client keeps its secret.
    """
    url = url.rstrip("/")
    if existing is not None:
        reconciler = existing.reconciler
        token = client_token(url, reconciler.client_id, reconciler.client_secret, verify=verify)
        if token is None:
            raise KeycloakRuntimeError(
                f"Keycloak at {url} refuses the stored credentials of {reconciler.client_id}; "
                "restore them from the secret store, or make a temporary admin with "
                "`kc.sh bootstrap-admin service` and run the bootstrap without stored accounts"
            )
        with token_session(url, token, verify=verify) as admin:
            ensure_master_brute_force(admin)
            ensure_admin_cli_without_password_grant(admin)
            remove_client(admin, bootstrap_client_id)
        return existing

    token = client_token(url, bootstrap_client_id, bootstrap_client_secret, verify=verify)
    if token is None:
        raise KeycloakRuntimeError(
            f"the temporary bootstrap client {bootstrap_client_id} cannot sign in to Keycloak "
            f"at {url}, and no stored operator accounts were given: if the accounts were made "
            "already, read them from the secret store; otherwise make a temporary admin with "
            "`kc.sh bootstrap-admin service` (Keycloak only makes one on its first start)"
        )
    password = new_password()
    with token_session(url, token, verify=verify) as admin:
        admin_role = get(admin, "/admin/realms/master/roles/admin")
        ensure_operator_admin(admin, admin_role, password)
        secret = ensure_reconciler_client(admin, admin_role)
        ensure_master_brute_force(admin)
        ensure_admin_cli_without_password_grant(admin)
    accounts = OperatorAccounts(
        admin_username=ADMIN_USERNAME,
        admin_password=password,
        reconciler=ServiceAccount(url, RECONCILER_CLIENT_ID, secret),
    )
    if store is not None:
        store(accounts)
    # The temporary client goes, removed by the permanent account (not by itself).
    reconciler_token = client_token(url, RECONCILER_CLIENT_ID, secret, verify=verify)
    if reconciler_token is None:
        raise KeycloakRuntimeError(
            f"the new reconciler client {RECONCILER_CLIENT_ID} cannot sign in to {url}; "
            f"the bootstrap client {bootstrap_client_id} was kept"
        )
    with token_session(url, reconciler_token, verify=verify) as admin:
        remove_client(admin, bootstrap_client_id)
    return accounts
