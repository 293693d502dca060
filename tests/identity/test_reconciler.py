"""The reconciler against the real Keycloak, each test in throwaway realms named with a uuid."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError
from joserfc.jwk import KeySet, RSAKey

from identity.admin import AdminAPI, Credentials
from identity.desired import (
    BROWSER_FLOW,
    KEYS_URL_ATTRIBUTE,
    POST_BROKER_FLOW,
    ROLES,
    Department,
    Federation,
    PortalClient,
    TenantRealm,
)
from identity.errors import IdentityError
from identity.reconciler import Reconciler, plan_as_json
from infra.targets.local.keycloak import LocalKeycloak
from tests.identity.browser import Client, sign_in

PASSWORD = "correct-horse-battery-42"


def admin_api(kc: LocalKeycloak) -> AdminAPI:
    account = kc.service_account()
    return AdminAPI(Credentials(account.server_url, account.client_id, account.client_secret))


def make_tenant(code: str, *, broker: bool = False, host: str = "127.0.0.9") -> TenantRealm:
    base = f"http://{host}:8000"
    return TenantRealm(
        code=code,
        display_name=f"{code} Karmayogi",
        languages=("hi", "en", "mai"),
        departments=(
            Department("health", "Health Department"),
            Department("education", "Education Department"),
        ),
        portal=PortalClient(
            base,
            (f"{base}/auth/callback/",),
            (f"{base}/",),
            f"{base}/auth/backchannel-logout/",
            f"portal-{code}",
        ),
        broker_to_hub=broker,
        keys_url=f"{base}/federation/v1/keys",
        broker_secret=f"broker-{code}-secret",
        federation_secret=f"federation-{code}-secret",
    )


@pytest.fixture
def federation(keycloak: LocalKeycloak) -> Iterator[Federation]:
    """A hub and two brokered tenants, in realms deleted after the test."""
    suffix = uuid.uuid4().hex[:8]
    hub = make_tenant(f"hub-{suffix}")
    tenants = (
        hub,
        make_tenant(f"alpha-{suffix}", broker=True, host="127.0.0.10"),
        make_tenant(f"beta-{suffix}", broker=True, host="127.0.0.11"),
    )
    yield Federation(keycloak.url, tenants, hub)
    api = admin_api(keycloak)
    for tenant in tenants:
        if api.get(f"/{tenant.code}", "cleanup") is not None:
            api.delete(f"/{tenant.code}", "cleanup")


@pytest.fixture
def api(keycloak: LocalKeycloak, federation: Federation) -> AdminAPI:
    """The federation applied; an admin client for the test's own checks and tampering."""
    api = admin_api(keycloak)
    Reconciler(api, federation).apply()
    return api


def create_user(api: AdminAPI, realm: str, username: str, **extra: Any) -> str:
    body = {
        "username": username,
        "enabled": True,
        "email": f"{username}@example.org",
        "emailVerified": True,
        "firstName": "Asha",
        "lastName": "Kumari",
        "credentials": [{"type": "password", "value": PASSWORD, "temporary": False}],
        **extra,
    }
    user_id = api.post(f"/{realm}/users", body, f"create user {username}")
    assert user_id
    return user_id


def portal(kc: LocalKeycloak, tenant: TenantRealm) -> Client:
    return Client(
        kc.url, tenant.code, "portal", tenant.portal.secret, tenant.portal.redirect_uris[0]
    )


def test_apply_creates_every_managed_object(
    keycloak: LocalKeycloak, federation: Federation, api: AdminAPI
) -> None:
    hub, alpha, _ = federation.tenants

    realm = api.get(f"/{alpha.code}", "realm")
    assert realm["bruteForceProtected"] is True
    assert "length(12)" in realm["passwordPolicy"]
    assert realm["eventsEnabled"] and realm["adminEventsEnabled"]
    assert realm["eventsExpiration"] == 90 * 24 * 3600
    assert realm["attributes"]["adminEventsExpiration"] == str(90 * 24 * 3600)
    assert realm["internationalizationEnabled"] is True
    assert realm["supportedLocales"] and set(realm["supportedLocales"]) == {"hi", "en", "mai"}
    assert realm["defaultLocale"] == "hi"
    assert realm["browserFlow"] == BROWSER_FLOW

    roles = {r["name"] for r in api.get(f"/{alpha.code}/roles", "roles")}
    assert set(ROLES) <= roles
    defaults = api.get(
        f"/{alpha.code}/roles/default-roles-{alpha.code}/composites/realm", "defaults"
    )
    assert "learner" in {r["name"] for r in defaults}

    group = api.get(f"/{alpha.code}/groups", "groups", search="departments")[0]
    children = api.get(
        f"/{alpha.code}/groups/{group['id']}/children", "children", briefRepresentation="false"
    )
    assert {c["name"]: c["attributes"]["displayName"] for c in children} == {
        "health": ["Health Department"],
        "education": ["Education Department"],
    }

    client = api.get(f"/{alpha.code}/clients", "portal", clientId="portal")[0]
    assert client["publicClient"] is False and client["standardFlowEnabled"] is True
    assert client["redirectUris"] == ["http://127.0.0.10:8000/auth/callback/"]
    assert client["attributes"]["pkce.code.challenge.method"] == "S256"
    assert (
        client["attributes"]["backchannel.logout.url"]
        == "http://127.0.0.10:8000/auth/backchannel-logout/"
    )
    mappers = {m["protocolMapper"]: m["config"] for m in client["protocolMappers"]}
    assert mappers["oidc-audience-mapper"]["included.client.audience"] == "portal"
    assert mappers["oidc-group-membership-mapper"]["claim.name"] == "groups"

    executions = api.get(f"/{alpha.code}/authentication/flows/{BROWSER_FLOW}/executions", "flow")
    otp = [e for e in executions if e.get("providerId") == "auth-otp-form"]
    condition = [e for e in executions if e.get("providerId") == "conditional-user-role"]
    assert otp and otp[0]["requirement"] == "REQUIRED" and condition
    config = api.get(
        f"/{alpha.code}/authentication/config/{condition[0]['authenticationConfig']}", "cfg"
    )
    assert config["config"]["condUserRole"] == "tenant_admin"

    idp = api.get(f"/{alpha.code}/identity-provider/instances/{hub.code}", "idp")
    assert idp["postBrokerLoginFlowAlias"] == POST_BROKER_FLOW
    assert idp["config"]["issuer"] == f"{keycloak.url}/realms/{hub.code}"
    assert idp["config"]["clientId"] == f"broker-{alpha.code}"

    broker = api.get(f"/{hub.code}/clients", "broker", clientId=f"broker-{alpha.code}")[0]
    assert broker["redirectUris"] == [
        f"{keycloak.url}/realms/{alpha.code}/broker/{hub.code}/endpoint"
    ]
    for tenant in federation.tenants:
        fed = api.get(f"/{hub.code}/clients", "federation", clientId=f"federation-{tenant.code}")[0]
        assert fed["serviceAccountsEnabled"] is True
        assert fed["attributes"][KEYS_URL_ATTRIBUTE] == tenant.keys_url
    # The hub brokers to nobody.
    assert api.get(f"/{hub.code}/identity-provider/instances", "idps") == []


def test_second_apply_makes_no_write_request(
    keycloak: LocalKeycloak, federation: Federation
) -> None:
    Reconciler(admin_api(keycloak), federation).apply()
    api = admin_api(keycloak)
    again = Reconciler(api, federation)
    assert again.apply() == []
    assert api.writes == 0
    assert api.requests["GET"] > 0


def test_drift_is_named_and_apply_puts_it_back(
    keycloak: LocalKeycloak, federation: Federation, api: AdminAPI
) -> None:
    alpha = federation.tenants[1].code
    api.put(f"/{alpha}", {"bruteForceProtected": False, "passwordPolicy": "length(4)"}, "tamper")
    client = api.get(f"/{alpha}/clients", "portal", clientId="portal")[0]
    api.put(
        f"/{alpha}/clients/{client['id']}",
        {**client, "redirectUris": ["https://attacker.example/*"]},
        "tamper",
    )
    rows = api.get(f"/{alpha}/authentication/flows/{BROWSER_FLOW}/executions", "flow")
    otp = next(r for r in rows if r.get("providerId") == "auth-otp-form")
    api.put(
        f"/{alpha}/authentication/flows/{BROWSER_FLOW}/executions",
        {**otp, "requirement": "DISABLED"},
        "tamper",
    )

    # ...and regenerates the portal's client secret, so the portal could no longer sign in.
    api.post(f"/{alpha}/clients/{client['id']}/client-secret", {}, "regenerate")
    new_secret = api.get(f"/{alpha}/clients/{client['id']}/client-secret", "read")["value"]

    drift = Reconciler(admin_api(keycloak), federation).plan()
    secret_change = next(f for c in drift for f in c.fields if f.path == "secret")
    assert (secret_change.live, secret_change.desired) == ("(secret)", "(secret)")
    assert new_secret not in repr(plan_as_json(drift))
    assert federation.tenants[1].portal.secret not in repr(plan_as_json(drift))
    paths = {(c.resource.kind, c.resource.realm, f.path) for c in drift for f in c.fields}
    assert ("realm", alpha, "bruteForceProtected") in paths
    assert ("realm", alpha, "passwordPolicy") in paths
    assert ("client", alpha, "redirectUris") in paths
    assert any(kind == "flow" and path.endswith("auth-otp-form") for kind, _, path in paths)
    assert all(c.resource.realm == alpha for c in drift)

    Reconciler(admin_api(keycloak), federation).apply()
    assert Reconciler(admin_api(keycloak), federation).plan() == []
    assert api.get(f"/{alpha}", "realm")["bruteForceProtected"] is True
    secret = api.get(f"/{alpha}/clients/{client['id']}/client-secret", "read")["value"]
    assert secret == federation.tenants[1].portal.secret


def test_removed_department_is_deleted_and_new_one_added(
    keycloak: LocalKeycloak, federation: Federation, api: AdminAPI
) -> None:
    hub, alpha, beta = federation.tenants
    changed = TenantRealm(
        **{**alpha.__dict__, "departments": (Department("home", "Home Department"),)}
    )
    plan = Reconciler(api, Federation(federation.server_url, (hub, changed, beta), hub)).apply(
        [alpha.code]
    )
    assert {(c.action, c.resource.name) for c in plan} == {
        ("create", "home"),
        ("delete", "health"),
        ("delete", "education"),
    }
    group = api.get(f"/{alpha.code}/groups", "groups", search="departments")[0]
    assert [c["name"] for c in api.get(f"/{alpha.code}/groups/{group['id']}/children", "kids")] == [
        "home"
    ]


def test_destroy_removes_one_tenant_and_nothing_else(
    keycloak: LocalKeycloak, federation: Federation, api: AdminAPI
) -> None:
    hub, alpha, beta = federation.tenants
    removed = Reconciler(admin_api(keycloak), federation).destroy(alpha.code, hub.code)
    assert set(removed) == {
        f"realm {alpha.code}",
        f"client {hub.code}/broker-{alpha.code}",
        f"client {hub.code}/federation-{alpha.code}",
    }
    assert api.get(f"/{alpha.code}", "gone") is None
    assert api.get(f"/{hub.code}/clients", "c", clientId=f"broker-{alpha.code}") == []
    # Everything of the others is untouched: a plan for them is empty.
    assert Reconciler(admin_api(keycloak), federation).plan([hub.code, beta.code]) == []


def test_brokered_sign_in_through_the_hub(
    keycloak: LocalKeycloak, federation: Federation, api: AdminAPI
) -> None:
    hub, alpha, _ = federation.tenants
    create_user(api, hub.code, "asha.hub")

    token = sign_in(portal(keycloak, alpha), "asha.hub", PASSWORD, via_idp=hub.code)
    claims = jwt.decode(
        token["access_token"],
        KeySet.import_key_set(
            httpx.get(f"{keycloak.url}/realms/{alpha.code}/protocol/openid-connect/certs").json()
        ),
    ).claims
    assert claims["iss"] == f"{keycloak.url}/realms/{alpha.code}"
    assert claims["azp"] == "portal"
    assert "portal" in ([claims["aud"]] if isinstance(claims["aud"], str) else claims["aud"])
    assert "learner" in claims["realm_access"]["roles"]
    assert claims["preferred_username"] == "asha.hub"
    # The tenant realm now has the user, linked to the hub.
    users = api.get(f"/{alpha.code}/users", "users", username="asha.hub", exact="true")
    links = api.get(f"/{alpha.code}/users/{users[0]['id']}/federated-identity", "links")
    assert [link["identityProvider"] for link in links] == [hub.code]


def test_tenant_token_carries_roles_and_departments(
    keycloak: LocalKeycloak, federation: Federation, api: AdminAPI
) -> None:
    alpha = federation.tenants[1]
    user_id = create_user(api, alpha.code, "ravi.creator")
    role = api.get(f"/{alpha.code}/roles/content_creator", "role")
    api.post(f"/{alpha.code}/users/{user_id}/role-mappings/realm", [role], "grant")
    group = api.get(f"/{alpha.code}/groups", "groups", search="departments")[0]
    health = next(
        g
        for g in api.get(f"/{alpha.code}/groups/{group['id']}/children", "kids")
        if g["name"] == "health"
    )
    api.put(f"/{alpha.code}/users/{user_id}/groups/{health['id']}", {}, "join")

    token = sign_in(portal(keycloak, alpha), "ravi.creator", PASSWORD)
    claims = jwt.decode(
        token["access_token"],
        KeySet.import_key_set(
            httpx.get(f"{keycloak.url}/realms/{alpha.code}/protocol/openid-connect/certs").json()
        ),
    ).claims
    assert {"learner", "content_creator"} <= set(claims["realm_access"]["roles"])
    assert claims["groups"] == ["/departments/health"]


def test_tenant_admin_must_enrol_otp(
    keycloak: LocalKeycloak, federation: Federation, api: AdminAPI
) -> None:
    alpha = federation.tenants[1]
    user_id = create_user(api, alpha.code, "meera.admin")
    role = api.get(f"/{alpha.code}/roles/tenant_admin", "role")
    api.post(f"/{alpha.code}/users/{user_id}/role-mappings/realm", [role], "grant")
    with pytest.raises(AssertionError, match="stopped at a page") as stopped:
        sign_in(portal(keycloak, alpha), "meera.admin", PASSWORD)
    # The page after the password asks to set up an authenticator app, not for a code.
    assert "totp" in str(stopped.value).lower() or "otp" in str(stopped.value).lower()


def test_a_tenant_admin_manages_the_people_of_their_realm_and_nothing_more(
    keycloak: LocalKeycloak, federation: Federation, api: AdminAPI
) -> None:
    alpha, beta = federation.tenants[1].code, federation.tenants[2].code
    admin_id = create_user(api, alpha, "meera.admin")
    create_user(api, alpha, "ravi.learner")
    role = api.get(f"/{alpha}/roles/tenant_admin", "role")
    api.post(f"/{alpha}/users/{admin_id}/role-mappings/realm", [role], "grant")

    def password_grant(client_id: str, username: str) -> httpx.Response:
        return httpx.post(
            f"{keycloak.url}/realms/{alpha}/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": client_id,
                "username": username,
                "password": PASSWORD,
            },
        )

    # A password alone opens no admin API: admin-cli takes no direct grant in a tenant realm.
    refused = password_grant("admin-cli", "meera.admin")
    assert refused.status_code in (400, 401)
    assert refused.json()["error"] == "unauthorized_client"

    # A token as the admin console holds one after password and OTP, from a probe client.
    api.post(
        f"/{alpha}/clients",
        {
            "clientId": "rights-probe",
            "publicClient": True,
            "standardFlowEnabled": False,
            "directAccessGrantsEnabled": True,
        },
        "probe client",
    )

    def as_user(username: str) -> httpx.Client:
        token = password_grant("rights-probe", username)
        assert token.status_code == 200, token.text
        return httpx.Client(
            base_url=f"{keycloak.url}/admin/realms",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )

    with as_user("meera.admin") as admin:
        created = admin.post(f"/{alpha}/users", json={"username": "new.joiner", "enabled": True})
        assert created.status_code == 201
        joiner = created.headers["location"].rsplit("/", 1)[-1]
        group = api.get(f"/{alpha}/groups", "groups", search="departments")[0]
        health = next(
            g
            for g in api.get(f"/{alpha}/groups/{group['id']}/children", "kids")
            if g["name"] == "health"
        )
        assert admin.put(f"/{alpha}/users/{joiner}/groups/{health['id']}").status_code == 204
        creator = api.get(f"/{alpha}/roles/content_creator", "role")
        mapped = admin.post(f"/{alpha}/users/{joiner}/role-mappings/realm", json=[creator])
        assert mapped.status_code == 204
        assert admin.get(f"/{alpha}/events").status_code == 200
        # Not the kit's business: clients, the realm's settings, other realms, admin roles.
        assert admin.get(f"/{alpha}/clients").status_code == 403
        realm = admin.get(f"/{alpha}").json()
        assert (
            admin.put(f"/{alpha}", json={**realm, "bruteForceProtected": False}).status_code == 403
        )
        assert admin.get(f"/{beta}/users").status_code == 403
        management = api.get(f"/{alpha}/clients", "rm", clientId="realm-management")[0]
        realm_admin = api.get(f"/{alpha}/clients/{management['id']}/roles/realm-admin", "role")
        escalate = admin.post(
            f"/{alpha}/users/{admin_id}/role-mappings/clients/{management['id']}",
            json=[realm_admin],
        )
        assert escalate.status_code == 403
    roles = api.get(f"/{alpha}/users/{joiner}/role-mappings/realm", "roles")
    assert "content_creator" in {r["name"] for r in roles}

    with as_user("ravi.learner") as learner:
        assert learner.get(f"/{alpha}/users").status_code == 403
        assert learner.post(f"/{alpha}/users", json={"username": "x"}).status_code == 403


def test_token_of_one_tenant_fails_validation_for_another(
    keycloak: LocalKeycloak, federation: Federation, api: AdminAPI
) -> None:
    _, alpha, beta = federation.tenants
    create_user(api, alpha.code, "lalit.alpha")
    token = sign_in(portal(keycloak, alpha), "lalit.alpha", PASSWORD)["access_token"]

    def keys(realm: str) -> KeySet:
        return KeySet.import_key_set(
            httpx.get(f"{keycloak.url}/realms/{realm}/protocol/openid-connect/certs").json()
        )

    # Alpha's own keys accept it: the check below fails for the right reason.
    assert jwt.decode(token, keys(alpha.code)).claims["iss"].endswith(f"/realms/{alpha.code}")
    # Beta's portal: signed by a key beta does not have (no key with that kid)...
    with pytest.raises(InvalidKeyIdError):
        jwt.decode(token, keys(beta.code))
    # ...and beta's signing key, tried regardless of kid, does not verify it...
    beta_rs256 = next(k for k in keys(beta.code).keys if k.alg == "RS256")
    with pytest.raises(BadSignatureError):
        jwt.decode(token, RSAKey.import_key(beta_rs256.as_dict()))
    # ...and an issuer beta does not trust.
    claims = jwt.decode(token, keys(alpha.code)).claims
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": f"{keycloak.url}/realms/{beta.code}"},
        aud={"essential": True, "value": "portal"},
    )
    with pytest.raises(Exception, match="iss"):
        registry.validate(claims)


def test_keycloak_error_names_tenant_and_object(
    keycloak: LocalKeycloak, federation: Federation
) -> None:
    hub, alpha, beta = federation.tenants
    # Keycloak refuses a redirect URI that is not a URI.
    bad = TenantRealm(
        **{
            **alpha.__dict__,
            "portal": PortalClient("not a url", ("javascript:alert(1)",), (), "x", "s"),
        }
    )
    with pytest.raises(IdentityError) as error:
        Reconciler(
            admin_api(keycloak), Federation(federation.server_url, (hub, bad, beta), hub)
        ).apply([alpha.code])
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{alpha.code}: ")
    assert "realm" in message or "client" in message


def test_a_tenant_without_its_hub_realm_is_refused_clearly(
    keycloak: LocalKeycloak, federation: Federation
) -> None:
    alpha = federation.tenants[1]
    with pytest.raises(IdentityError, match=r"the hub realm hub-\w+ does not exist yet; apply it"):
        Reconciler(admin_api(keycloak), federation).plan([alpha.code])
