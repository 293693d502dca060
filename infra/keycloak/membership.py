"""A member's clients in the hub realm, kept by the hub's operator (DESIGN §10).

A tenant whose hub runs on another deployment holds two clients in the hub realm, made when
the hub's operator admits it: ``federation-<code>`` (client credentials for feed and xAPI
calls, with the member's admitted keys URL as an attribute) and ``broker-<code>`` (the
member realm's identity provider signs its users in through it). The reconciler makes the
same two clients for tenants on the hub's own Keycloak; their representations come from
:mod:`identity.desired`, so both paths make the same clients.

Every function here acts through :class:`identity.admin.AdminAPI` and raises
:class:`identity.errors.IdentityError` naming the hub realm, the client and Keycloak's HTTP
status. Secrets appear only in :class:`MemberSecrets`, never in a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from identity.admin import AdminAPI, q
from identity.desired import KEYS_URL_ATTRIBUTE, broker_client, federation_client
from identity.errors import IdentityError
from infra.home import new_password

FEDERATION = "federation"
BROKER = "broker"
KINDS = (FEDERATION, BROKER)


@dataclass(frozen=True)
class MemberClients:
    """What the hub needs from a join request to make the member's clients."""

    code: str
    display_name: str
    keys_url: str
    broker_redirect_uri: str


@dataclass(frozen=True)
class MemberSecrets:
    """The member's client secrets, for the credentials file that goes back to it."""

    federation_secret: str = field(repr=False)
    broker_secret: str = field(repr=False)


def client_id(kind: str, code: str) -> str:
    """``federation-<code>`` or ``broker-<code>``."""
    return f"{kind}-{code}"


def _find(api: AdminAPI, hub: str, cid: str) -> dict[str, Any] | None:
    found = api.get(f"/{q(hub)}/clients", f"hub {hub}: find client {cid}", clientId=cid)
    return dict(found[0]) if found else None


def _require(api: AdminAPI, hub: str, code: str, action: str) -> dict[str, dict[str, Any]]:
    """Both of the member's clients by kind; an error when either is missing."""
    clients = {kind: _find(api, hub, client_id(kind, code)) for kind in KINDS}
    missing = [client_id(kind, code) for kind, c in clients.items() if c is None]
    if missing:
        raise IdentityError(
            f"hub {hub}: cannot {action} {code}: no client {' or '.join(missing)} "
            f"(is {code} a member? admit it first)"
        )
    return {kind: c for kind, c in clients.items() if c is not None}


def _delete(api: AdminAPI, hub: str, client: dict[str, Any]) -> None:
    api.delete(
        f"/{q(hub)}/clients/{client['id']}", f"hub {hub}: delete client {client['clientId']}"
    )


def admit_member(api: AdminAPI, hub: str, member: MemberClients) -> MemberSecrets:
    """Make the member's two clients with fresh secrets and return the secrets.

    Clients of the same names (left by a member removed earlier, or a failed admission) are
    deleted first, so an admission always starts clean. Nothing is left half made: if the
    second client cannot be made, the first is deleted again.
    """
    code = member.code
    if code == hub:
        raise IdentityError(f"hub {hub}: the hub cannot admit itself as a member")
    for kind in KINDS:
        leftover = _find(api, hub, client_id(kind, code))
        if leftover is not None:
            _delete(api, hub, leftover)
    secrets = MemberSecrets(federation_secret=new_password(), broker_secret=new_password())
    federation = federation_client(
        code, member.display_name, member.keys_url, secrets.federation_secret
    )
    broker = broker_client(
        code, member.display_name, member.broker_redirect_uri, secrets.broker_secret
    )
    clients = f"/{q(hub)}/clients"
    made = api.post(clients, federation, f"hub {hub}: create client {federation['clientId']}")
    try:
        api.post(clients, broker, f"hub {hub}: create client {broker['clientId']}")
    except IdentityError:
        first = (
            {"id": made, "clientId": federation["clientId"]}
            if made
            else _find(api, hub, federation["clientId"])
        )
        if first is not None:
            _delete(api, hub, first)
        raise
    return secrets


def _set_enabled(api: AdminAPI, hub: str, client: dict[str, Any], enabled: bool) -> None:
    if client.get("enabled") is enabled:
        return
    action = "enable" if enabled else "disable"
    api.put(
        f"/{q(hub)}/clients/{client['id']}",
        {**client, "enabled": enabled},
        f"hub {hub}: {action} client {client['clientId']}",
    )


def _end_sessions(api: AdminAPI, hub: str, client: dict[str, Any]) -> int:
    """End every user session (online and offline) that holds a token of ``client``."""
    realm, cid = f"/{q(hub)}", client["clientId"]
    base = f"{realm}/clients/{client['id']}"
    ended = 0
    for kind, offline in (("user-sessions", False), ("offline-sessions", True)):
        sessions = api.get(f"{base}/{kind}", f"hub {hub}: {kind} of client {cid}") or []
        for session in sessions:
            # Keycloak's DELETE /sessions/{id} ends an online session; with isOffline it
            # ends the offline one, which the first alone would leave in place.
            path = f"{realm}/sessions/{q(session['id'])}"
            if offline:
                path += "?isOffline=true"
            api.delete(path, f"hub {hub}: end a session of client {cid}")
            ended += 1
    return ended


def suspend_member(api: AdminAPI, hub: str, code: str) -> None:
    """Disable the member's clients and end their sessions: its next call gets 401.

    Access tokens already issued stay valid until they expire; the hub's portal checks the
    member's status on every call, so a suspension bites at once there.
    """
    clients = _require(api, hub, code, "suspend")
    for client in clients.values():
        _set_enabled(api, hub, client, False)
    federation = clients[FEDERATION]
    account = api.get(
        f"/{q(hub)}/clients/{federation['id']}/service-account-user",
        f"hub {hub}: service account of client {federation['clientId']}",
    )
    if account is not None:
        api.post(
            f"/{q(hub)}/users/{account['id']}/logout",
            {},
            f"hub {hub}: end the sessions of client {federation['clientId']}",
        )
    for client in clients.values():
        _end_sessions(api, hub, client)


def resume_member(api: AdminAPI, hub: str, code: str) -> None:
    """Enable the member's clients again (their secrets are unchanged)."""
    for client in _require(api, hub, code, "resume").values():
        _set_enabled(api, hub, client, True)


def remove_member(api: AdminAPI, hub: str, code: str) -> list[str]:
    """Delete the member's clients; returns the client ids deleted (none when absent)."""
    removed = []
    for kind in KINDS:
        client = _find(api, hub, client_id(kind, code))
        if client is not None:
            _delete(api, hub, client)
            removed.append(client["clientId"])
    return removed


def rotate_member_secrets(api: AdminAPI, hub: str, code: str) -> MemberSecrets:
    """Have Keycloak make new secrets for both clients; the old ones stop working at once."""
    clients = _require(api, hub, code, "rotate the secrets of")
    values: dict[str, str] = {}
    for kind, client in clients.items():
        path = f"/{q(hub)}/clients/{client['id']}/client-secret"
        cid = client["clientId"]
        api.post(path, {}, f"hub {hub}: regenerate the secret of client {cid}")
        secret = api.get(path, f"hub {hub}: read the secret of client {cid}")
        if not isinstance(secret, dict) or not secret.get("value"):
            raise IdentityError(f"hub {hub}: Keycloak returned no secret for client {cid}")
        values[kind] = str(secret["value"])
    return MemberSecrets(federation_secret=values[FEDERATION], broker_secret=values[BROKER])


def member_client_state(api: AdminAPI, hub: str, code: str) -> dict[str, Any]:
    """The member's clients as ``members`` and ``status`` report them.

    ``{"federation": {"client_id", "exists", "enabled", "keys_url"}, "broker": {"client_id",
    "exists", "enabled"}}``; a missing client is ``exists: false, enabled: false``.
    """
    state: dict[str, Any] = {}
    for kind in KINDS:
        cid = client_id(kind, code)
        client = _find(api, hub, cid)
        row: dict[str, Any] = {
            "client_id": cid,
            "exists": client is not None,
            "enabled": bool(client and client.get("enabled")),
        }
        if kind == FEDERATION:
            attributes = (client or {}).get("attributes") or {}
            row["keys_url"] = attributes.get(KEYS_URL_ATTRIBUTE)
        state[kind] = row
    return state


__all__ = [
    "MemberClients",
    "MemberSecrets",
    "admit_member",
    "member_client_state",
    "remove_member",
    "resume_member",
    "rotate_member_secrets",
    "suspend_member",
]
