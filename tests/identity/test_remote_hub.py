"""A tenant whose hub runs on another deployment: only its identity provider is reconciled."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from identity.desired import Federation, RemoteHub, desired_resources
from identity.reconciler import Reconciler
from infra.targets.local.keycloak import LocalKeycloak
from tests.identity.test_reconciler import admin_api, make_tenant

REMOTE_ISSUER = "https://auth.hub.example/realms/{code}"


@pytest.fixture
def remote_federation(keycloak: LocalKeycloak) -> Iterator[Federation]:
    """One brokered tenant on this Keycloak and a hub elsewhere; the realm deleted after."""
    suffix = uuid.uuid4().hex[:8]
    hub_code = f"hub-{suffix}"
    tenant = make_tenant(f"gamma-{suffix}", broker=True)
    remote = RemoteHub(hub_code, "Karmayogi Bharat", REMOTE_ISSUER.format(code=hub_code))
    yield Federation(keycloak.url, (tenant,), remote_hub=remote)
    api = admin_api(keycloak)
    for realm in (tenant.code, hub_code):
        if api.get(f"/{realm}", "cleanup") is not None:
            api.delete(f"/{realm}", "cleanup")


def test_a_remote_hub_gives_the_tenant_its_idp_and_nothing_in_the_hub_realm(
    keycloak: LocalKeycloak, remote_federation: Federation
) -> None:
    tenant = remote_federation.tenants[0]
    remote = remote_federation.remote_hub
    assert remote is not None
    api = admin_api(keycloak)

    changes = Reconciler(api, remote_federation).apply()
    assert {c.resource.realm for c in changes} == {tenant.code}

    idp = api.get(f"/{tenant.code}/identity-provider/instances/{remote.code}", "idp")
    assert idp["displayName"] == "Karmayogi Bharat"
    config = idp["config"]
    assert config["issuer"] == remote.issuer
    endpoints = f"{remote.issuer}/protocol/openid-connect"
    assert config["authorizationUrl"] == f"{endpoints}/auth"
    assert config["tokenUrl"] == f"{endpoints}/token"
    assert config["jwksUrl"] == f"{endpoints}/certs"
    assert config["clientId"] == f"broker-{tenant.code}"
    assert config["pkceEnabled"] == "true" and config["pkceMethod"] == "S256"
    # No realm of that name here, and none made.
    assert api.get(f"/{remote.code}", "hub realm") is None

    again = admin_api(keycloak)
    assert Reconciler(again, remote_federation).plan() == []
    assert Reconciler(again, remote_federation).apply() == []
    assert again.writes == 0


def test_destroy_leaves_a_remote_hub_alone(
    keycloak: LocalKeycloak, remote_federation: Federation
) -> None:
    tenant = remote_federation.tenants[0]
    remote = remote_federation.remote_hub
    assert remote is not None
    api = admin_api(keycloak)
    Reconciler(api, remote_federation).apply()
    # A realm of the hub's code on this Keycloak is not the remote hub's: its clients stay.
    api.post("", {"realm": remote.code, "enabled": True}, "stand-in realm")
    api.renew_token()
    api.post(
        f"/{remote.code}/clients", {"clientId": f"federation-{tenant.code}"}, "stand-in client"
    )

    removed = Reconciler(admin_api(keycloak), remote_federation).destroy(tenant.code, remote.code)
    assert removed == [f"realm {tenant.code}"]
    assert api.get(f"/{remote.code}/clients", "c", clientId=f"federation-{tenant.code}")


def test_only_a_brokered_tenant_gets_the_remote_idp() -> None:
    remote = RemoteHub("hub", "Hub", REMOTE_ISSUER.format(code="hub"))
    brokered, alone = make_tenant("alpha", broker=True), make_tenant("beta")
    resources = desired_resources(Federation("http://kc", (brokered, alone), remote_hub=remote))
    assert [(r.realm, r.name) for r in resources if r.kind == "idp"] == [("alpha", "hub")]
    assert {r.realm for r in resources} == {"alpha", "beta"}


def test_a_federation_has_one_hub() -> None:
    hub = make_tenant("hub")
    remote = RemoteHub("bharat", "Bharat", REMOTE_ISSUER.format(code="bharat"))
    with pytest.raises(ValueError, match="one hub"):
        Federation("http://kc", (hub,), hub, remote)
    with pytest.raises(ValueError, match="code of a realm on this Keycloak"):
        Federation("http://kc", (make_tenant("bharat"),), remote_hub=remote)
    with pytest.raises(ValueError, match="/realms/bharat"):
        RemoteHub("bharat", "Bharat", "https://auth.hub.example/realms/other")
