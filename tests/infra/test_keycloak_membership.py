"""A member's clients in the hub realm, against the session's real Keycloak.

The module works in one throwaway hub realm named with a uuid, deleted at its end; each
test admits its own member.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from identity.admin import AdminAPI
from identity.desired import KEYS_URL_ATTRIBUTE, Federation, RemoteHub
from identity.errors import IdentityError
from identity.reconciler import Reconciler
from infra.keycloak import membership
from infra.keycloak.membership import (
    MemberClients,
    MemberSecrets,
    admit_member,
    member_client_state,
    remove_member,
    resume_member,
    rotate_member_secrets,
    suspend_member,
)
from infra.targets.local.keycloak import LocalKeycloak
from tests.identity.browser import Client, sign_in
from tests.identity.test_reconciler import PASSWORD, admin_api, create_user, make_tenant


@pytest.fixture(scope="module")
def hub(keycloak: LocalKeycloak) -> Iterator[str]:
    """A hub realm of this module's own."""
    code = f"hub-{uuid.uuid4().hex[:8]}"
    api = admin_api(keycloak)
    api.post("", {"realm": code, "enabled": True}, "create hub realm")
    yield code
    admin_api(keycloak).delete(f"/{code}", "delete hub realm")


@pytest.fixture
def api(keycloak: LocalKeycloak, hub: str) -> AdminAPI:
    # Made after the hub realm, so the token carries its admin roles.
    return admin_api(keycloak)


def member(code: str | None = None) -> MemberClients:
    code = code or f"state-{uuid.uuid4().hex[:6]}"
    return MemberClients(
        code=code,
        display_name=f"{code} Karmayogi",
        keys_url=f"https://{code}.example/federation/v1/keys",
        broker_redirect_uri=f"https://auth.{code}.example/realms/{code}/broker/hub/endpoint",
    )


def grant(kc: LocalKeycloak, hub: str, code: str, secret: str) -> httpx.Response:
    """A client-credentials grant of ``federation-<code>``."""
    return httpx.post(
        f"{kc.url}/realms/{hub}/protocol/openid-connect/token",
        data={
            "grant_type": "client_credentials",
            "client_id": f"federation-{code}",
            "client_secret": secret,
        },
        timeout=30,
    )


def refused(response: httpx.Response) -> bool:
    return response.status_code in (400, 401) and response.json().get("error") in (
        "unauthorized_client",
        "invalid_client",
    )


def client(api: AdminAPI, hub: str, client_id: str) -> dict[str, Any]:
    found = api.get(f"/{hub}/clients", "client", clientId=client_id)
    assert found, f"no client {client_id}"
    return dict(found[0])


def test_admit_makes_both_clients_and_the_federation_client_takes_a_grant(
    keycloak: LocalKeycloak, hub: str, api: AdminAPI
) -> None:
    new = member()
    secrets = admit_member(api, hub, new)
    assert secrets.federation_secret != secrets.broker_secret
    assert secrets.federation_secret not in repr(secrets)

    token = grant(keycloak, hub, new.code, secrets.federation_secret)
    assert token.status_code == 200, token.text

    federation = client(api, hub, f"federation-{new.code}")
    assert federation["serviceAccountsEnabled"] is True
    assert federation["standardFlowEnabled"] is False
    assert federation["directAccessGrantsEnabled"] is False
    assert federation["publicClient"] is False
    assert federation["attributes"][KEYS_URL_ATTRIBUTE] == new.keys_url
    broker = client(api, hub, f"broker-{new.code}")
    assert broker["standardFlowEnabled"] is True and broker["serviceAccountsEnabled"] is False
    assert broker["redirectUris"] == [new.broker_redirect_uri]
    assert broker["attributes"]["pkce.code.challenge.method"] == "S256"

    state = member_client_state(api, hub, new.code)
    assert state["federation"] == {
        "client_id": f"federation-{new.code}",
        "exists": True,
        "enabled": True,
        "keys_url": new.keys_url,
    }
    assert state["broker"] == {"client_id": f"broker-{new.code}", "exists": True, "enabled": True}


def test_suspend_refuses_new_grants_and_ends_sessions_and_resume_allows_them(
    keycloak: LocalKeycloak, hub: str, api: AdminAPI
) -> None:
    new = member()
    secrets = admit_member(api, hub, new)
    assert grant(keycloak, hub, new.code, secrets.federation_secret).status_code == 200
    # A hub user signed in through the member's broker client holds a session of it.
    create_user(api, hub, f"asha-{new.code}")
    sign_in(
        Client(
            keycloak.url,
            hub,
            f"broker-{new.code}",
            secrets.broker_secret,
            new.broker_redirect_uri,
        ),
        f"asha-{new.code}",
        PASSWORD,
    )
    broker = client(api, hub, f"broker-{new.code}")
    broker_id = broker["id"]
    assert api.get(f"/{hub}/clients/{broker_id}/user-sessions", "sessions")
    # ...and one with an offline token (a direct grant, allowed for the test only, is the
    # shortest way to one).
    api.put(f"/{hub}/clients/{broker_id}", {**broker, "directAccessGrantsEnabled": True}, "t")
    offline = httpx.post(
        f"{keycloak.url}/realms/{hub}/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": f"broker-{new.code}",
            "client_secret": secrets.broker_secret,
            "username": f"asha-{new.code}",
            "password": PASSWORD,
            "scope": "openid offline_access",
        },
        timeout=30,
    )
    assert offline.status_code == 200, offline.text
    assert api.get(f"/{hub}/clients/{broker_id}/offline-sessions", "offline sessions")

    suspend_member(api, hub, new.code)

    assert refused(grant(keycloak, hub, new.code, secrets.federation_secret))
    assert api.get(f"/{hub}/clients/{broker_id}/user-sessions", "sessions") == []
    assert api.get(f"/{hub}/clients/{broker_id}/offline-sessions", "sessions") == []
    federation_id = client(api, hub, f"federation-{new.code}")["id"]
    account = api.get(f"/{hub}/clients/{federation_id}/service-account-user", "account")
    assert api.get(f"/{hub}/users/{account['id']}/sessions", "sessions") == []
    assert api.get(f"/{hub}/clients/{federation_id}/user-sessions", "sessions") == []
    state = member_client_state(api, hub, new.code)
    assert not state["federation"]["enabled"] and not state["broker"]["enabled"]
    assert state["federation"]["exists"] and state["broker"]["exists"]
    # Suspending twice is harmless.
    suspend_member(api, hub, new.code)

    resume_member(api, hub, new.code)
    assert grant(keycloak, hub, new.code, secrets.federation_secret).status_code == 200
    state = member_client_state(api, hub, new.code)
    assert state["federation"]["enabled"] and state["broker"]["enabled"]


def test_rotate_makes_the_old_secrets_fail_and_the_new_ones_work(
    keycloak: LocalKeycloak, hub: str, api: AdminAPI
) -> None:
    new = member()
    old = admit_member(api, hub, new)
    rotated = rotate_member_secrets(api, hub, new.code)
    assert rotated.federation_secret not in (old.federation_secret, old.broker_secret)
    assert rotated.broker_secret not in (old.federation_secret, old.broker_secret)

    assert refused(grant(keycloak, hub, new.code, old.federation_secret))
    assert grant(keycloak, hub, new.code, rotated.federation_secret).status_code == 200
    broker_id = client(api, hub, f"broker-{new.code}")["id"]
    live = api.get(f"/{hub}/clients/{broker_id}/client-secret", "secret")["value"]
    assert live == rotated.broker_secret


def test_remove_deletes_both_clients_and_tolerates_their_absence(
    keycloak: LocalKeycloak, hub: str, api: AdminAPI
) -> None:
    new = member()
    secrets = admit_member(api, hub, new)
    assert remove_member(api, hub, new.code) == [f"federation-{new.code}", f"broker-{new.code}"]
    assert api.get(f"/{hub}/clients", "c", clientId=f"federation-{new.code}") == []
    assert api.get(f"/{hub}/clients", "c", clientId=f"broker-{new.code}") == []
    assert refused(grant(keycloak, hub, new.code, secrets.federation_secret))
    assert remove_member(api, hub, new.code) == []
    state = member_client_state(api, hub, new.code)
    assert state["federation"] == {
        "client_id": f"federation-{new.code}",
        "exists": False,
        "enabled": False,
        "keys_url": None,
    }
    assert state["broker"]["exists"] is False


def test_admit_over_leftovers_starts_clean(
    keycloak: LocalKeycloak, hub: str, api: AdminAPI
) -> None:
    new = member()
    first = admit_member(api, hub, new)
    suspend_member(api, hub, new.code)
    again = admit_member(api, hub, new)
    assert refused(grant(keycloak, hub, new.code, first.federation_secret))
    assert grant(keycloak, hub, new.code, again.federation_secret).status_code == 200
    assert member_client_state(api, hub, new.code)["broker"]["enabled"] is True

    # A broker client alone, say from an admission cut short by hand, is replaced too.
    other = member()
    api.post(f"/{hub}/clients", {"clientId": f"broker-{other.code}"}, "leftover")
    admit_member(api, hub, other)
    assert client(api, hub, f"broker-{other.code}")["redirectUris"] == [other.broker_redirect_uri]


def test_a_failed_admission_leaves_nothing_and_names_what_failed(
    hub: str, api: AdminAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(membership, "new_password", lambda: "s3cret-value-never-shown")
    # Keycloak refuses a redirect URI with a javascript: scheme.
    bad = MemberClients("bad", "Bad", "https://bad.example/keys", "javascript:alert(1)")
    with pytest.raises(IdentityError) as error:
        admit_member(api, hub, bad)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"hub {hub}: create client broker-bad: ")
    assert "HTTP 400" in message
    assert "s3cret" not in message
    state = member_client_state(api, hub, "bad")
    assert not state["federation"]["exists"] and not state["broker"]["exists"]


def test_acting_on_a_member_that_was_never_admitted_is_an_error(hub: str, api: AdminAPI) -> None:
    for action in (suspend_member, resume_member, rotate_member_secrets):
        with pytest.raises(IdentityError, match=rf"hub {hub}: .*no client federation-nobody"):
            action(api, hub, "nobody")
    with pytest.raises(IdentityError, match="cannot admit itself"):
        admit_member(api, hub, member(hub))


def test_a_member_realm_signs_in_through_the_hub_it_was_admitted_to(
    keycloak: LocalKeycloak, hub: str, api: AdminAPI
) -> None:
    """The whole handshake on one Keycloak: the hub admits, the member's reconciler brokers."""
    tenant = make_tenant(f"delta-{uuid.uuid4().hex[:6]}", broker=True, host="127.0.0.12")
    admitted = MemberClients(
        tenant.code,
        tenant.display_name,
        tenant.keys_url or "",
        f"{keycloak.url}/realms/{tenant.code}/broker/{hub}/endpoint",
    )
    secrets: MemberSecrets = admit_member(api, hub, admitted)
    accepted = type(tenant)(**{**tenant.__dict__, "broker_secret": secrets.broker_secret})
    remote = RemoteHub(hub, "Karmayogi Bharat", f"{keycloak.url}/realms/{hub}")
    federation = Federation(keycloak.url, (accepted,), remote_hub=remote)
    try:
        Reconciler(admin_api(keycloak), federation).apply()
        create_user(api, hub, f"ravi-{tenant.code}")
        token = sign_in(
            Client(
                keycloak.url,
                tenant.code,
                "portal",
                tenant.portal.secret,
                tenant.portal.redirect_uris[0],
            ),
            f"ravi-{tenant.code}",
            PASSWORD,
            via_idp=hub,
        )
        assert token["access_token"]
    finally:
        admin_api(keycloak).delete(f"/{tenant.code}", "delete member realm")
