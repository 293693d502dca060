"""A state's own identity providers against the real Keycloak.

A second realm in the session's Keycloak plays the state's SSO (a Parichay-like OIDC
provider); the tenant realm brokers to it with the client secret read from Keycloak's file
vault, which the reconciler fills. Realms are named with a uuid and deleted afterwards.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Route

from identity.admin import AdminAPI
from identity.desired import (
    ExternalProvider,
    Federation,
    ProviderMapper,
    TenantRealm,
    VaultSecret,
)
from identity.reconciler import Reconciler
from identity.vault import FileVault, vault_file_name
from infra.targets.local.keycloak import LocalKeycloak
from tests.identity.browser import Client, authorization_request, browser_session, sign_in
from tests.identity.test_reconciler import PASSWORD, admin_api, make_tenant, portal
from tests.tenant_portal.browser import chromium_fixture, page_fixture  # noqa: F401

CLAIMS = {"dept": "HLTH", "designation": "Section Officer", "karmayogi_role": "trainer"}


@dataclass(frozen=True)
class StateSSO:
    """The state's existing OIDC provider: a realm with one client for the tenant."""

    realm: str
    client_id: str
    secret: str
    issuer: str

    def config(self) -> dict[str, str]:
        endpoints = f"{self.issuer}/protocol/openid-connect"
        return {
            "issuer": self.issuer,
            "authorizationUrl": f"{endpoints}/auth",
            "tokenUrl": f"{endpoints}/token",
            "userInfoUrl": f"{endpoints}/userinfo",
            "jwksUrl": f"{endpoints}/certs",
            "clientId": self.client_id,
            "clientSecret": "${vault.state-sso}",
        }


def _claim_mapper(attribute: str) -> dict[str, Any]:
    return {
        "name": attribute,
        "protocol": "openid-connect",
        "protocolMapper": "oidc-usermodel-attribute-mapper",
        "config": {
            "user.attribute": attribute,
            "claim.name": attribute,
            "jsonType.label": "String",
            "id.token.claim": "true",
            "access.token.claim": "true",
            "userinfo.token.claim": "true",
        },
    }


def make_state_sso(api: AdminAPI, server_url: str, tenant: str, alias: str) -> StateSSO:
    realm = f"sso-{uuid.uuid4().hex[:8]}"
    secret = uuid.uuid4().hex
    api.post(
        "",
        {
            "realm": realm,
            "enabled": True,
            "clients": [
                {
                    "clientId": "karmayogi",
                    "protocol": "openid-connect",
                    "publicClient": False,
                    "secret": secret,
                    "standardFlowEnabled": True,
                    "redirectUris": [f"{server_url}/realms/{tenant}/broker/{alias}/endpoint"],
                    "protocolMappers": [_claim_mapper(a) for a in CLAIMS],
                }
            ],
        },
        "create the state's SSO realm",
    )
    api.renew_token()
    profile = api.get(f"/{realm}/users/profile", "profile")
    api.put(
        f"/{realm}/users/profile", {**profile, "unmanagedAttributePolicy": "ENABLED"}, "profile"
    )
    return StateSSO(realm, "karmayogi", secret, f"{server_url}/realms/{realm}")


def add_officer(api: AdminAPI, realm: str, username: str, **claims: str) -> None:
    api.post(
        f"/{realm}/users",
        {
            "username": username,
            "enabled": True,
            "email": f"{username}@state.example",
            "emailVerified": True,
            "firstName": "Asha",
            "lastName": "Kumari",
            "attributes": {k: [v] for k, v in {**CLAIMS, **claims}.items()},
            "credentials": [{"type": "password", "value": PASSWORD, "temporary": False}],
        },
        f"create {username} in {realm}",
    )


def provider(sso: StateSSO, **options: Any) -> ExternalProvider:
    return ExternalProvider(
        alias="state-sso",
        kind="oidc",
        display_name="Sign in with State SSO",
        config=sso.config(),
        mappers=(
            ProviderMapper("dept", "HLTH", department="health"),
            ProviderMapper("dept", "EDU", department="education"),
            ProviderMapper("designation", attribute="post"),
            ProviderMapper("karmayogi_role", "trainer", role="content_creator"),
        ),
        **options,
    )


@dataclass
class Setup:
    api: AdminAPI
    sso: StateSSO
    tenant: TenantRealm
    vault: FileVault


@pytest.fixture
def setup(keycloak: LocalKeycloak) -> Iterator[Setup]:
    api = admin_api(keycloak)
    code = f"gamma-{uuid.uuid4().hex[:8]}"
    sso = make_state_sso(api, keycloak.url, code, "state-sso")
    tenant = dataclasses.replace(
        make_tenant(code),
        providers=(provider(sso),),
        vault=(VaultSecret("state-sso", sso.secret),),
    )
    vault = FileVault(keycloak.paths.vault)
    yield Setup(api, sso, tenant, vault)
    for realm in (code, sso.realm):
        if api.get(f"/{realm}", "cleanup") is not None:
            api.delete(f"/{realm}", "cleanup")
    vault.remove_realm(code)


def _reconciler(keycloak: LocalKeycloak, setup: Setup, tenant: TenantRealm) -> Reconciler:
    return Reconciler(admin_api(keycloak), Federation(keycloak.url, (tenant,)), vault=setup.vault)


def chromium_sign_in(
    page: Page, client: Client, username: str, password: str, via_idp: str
) -> dict[str, Any]:
    """Sign in with Chromium: the provider's button on the realm's login page, then the
    provider's own form; the portal's callback is answered here and its code exchanged."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    params = {
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "response_type": "code",
        "scope": "openid",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    base = f"{client.server_url}/realms/{client.realm}/protocol/openid-connect"
    callbacks: list[str] = []

    def portal_callback(route: Route) -> None:
        callbacks.append(route.request.url)
        route.fulfill(body="the portal")

    page.route(f"{client.redirect_uri}**", portal_callback)
    page.goto(f"{base}/auth?{urlencode(params)}")
    page.click(f"a[href*='/broker/{via_idp}/login']")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#kc-login")
    page.wait_for_url(f"{client.redirect_uri}**")
    code = parse_qs(urlsplit(callbacks[-1]).query)["code"][0]
    token = httpx.post(
        f"{base}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": client.redirect_uri,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "code_verifier": verifier,
        },
        timeout=30,
    )
    token.raise_for_status()
    return dict(token.json())


def test_officer_signs_in_through_the_state_sso_with_department_post_and_role(
    keycloak: LocalKeycloak, setup: Setup, page: Page
) -> None:
    _reconciler(keycloak, setup, setup.tenant).apply()
    add_officer(setup.api, setup.sso.realm, "asha")

    token = chromium_sign_in(
        page, portal(keycloak, setup.tenant), "asha", PASSWORD, via_idp="state-sso"
    )

    claims = unverified_claims(token["access_token"])
    assert claims["groups"] == ["/departments/health"]
    assert "content_creator" in claims["roles"]
    code = setup.tenant.code
    user = setup.api.get(f"/{code}/users/{claims['sub']}", "user")
    assert user["attributes"]["post"] == ["Section Officer"]
    assert user["email"] == "asha@state.example"
    # The admin API carries the vault expression, never the secret; the file holds it, 0600.
    idp = setup.api.get(f"/{code}/identity-provider/instances/state-sso", "idp")
    assert idp["config"]["clientSecret"] == "${vault.state-sso}"
    path = setup.vault.path(code, "state-sso")
    assert path.read_text() == setup.sso.secret
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.name == vault_file_name(code, "state-sso")


def test_department_follows_the_claim_at_the_next_sign_in(
    keycloak: LocalKeycloak, setup: Setup
) -> None:
    _reconciler(keycloak, setup, setup.tenant).apply()
    add_officer(setup.api, setup.sso.realm, "ravi")
    client = portal(keycloak, setup.tenant)
    sign_in(client, "ravi", PASSWORD, via_idp="state-sso")
    # The state transfers Ravi to education and he is no trainer any more.
    found = setup.api.get(f"/{setup.sso.realm}/users", "ravi", username="ravi", exact="true")
    setup.api.put(
        f"/{setup.sso.realm}/users/{found[0]['id']}",
        {
            **found[0],
            "attributes": {
                **{k: [v] for k, v in CLAIMS.items()},
                "dept": ["EDU"],
                "karmayogi_role": ["learner"],
            },
        },
        "transfer",
    )
    claims = unverified_claims(
        sign_in(client, "ravi", PASSWORD, via_idp="state-sso")["access_token"]
    )
    assert claims["groups"] == ["/departments/education"]
    assert "content_creator" not in claims["roles"]


def test_first_sign_in_links_to_the_account_with_the_same_email(
    keycloak: LocalKeycloak, setup: Setup
) -> None:
    tenant = dataclasses.replace(setup.tenant, providers=(provider(setup.sso, link_by_email=True),))
    _reconciler(keycloak, setup, tenant).apply()
    existing = setup.api.post(
        f"/{tenant.code}/users",
        {
            "username": "asha.kumari",
            "enabled": True,
            "email": "meena@state.example",
            "emailVerified": True,
            "firstName": "Meena",
            "lastName": "Devi",
        },
        "an account made before the SSO was connected",
    )
    add_officer(setup.api, setup.sso.realm, "meena")

    token = sign_in(portal(keycloak, tenant), "meena", PASSWORD, via_idp="state-sso")

    assert unverified_claims(token["access_token"])["sub"] == existing
    links = setup.api.get(f"/{tenant.code}/users/{existing}/federated-identity", "links")
    assert [link["identityProvider"] for link in links] == ["state-sso"]


def test_sign_in_only_through_the_provider_skips_the_login_form(
    keycloak: LocalKeycloak, setup: Setup
) -> None:
    tenant = dataclasses.replace(setup.tenant, providers=(provider(setup.sso, exclusive=True),))
    _reconciler(keycloak, setup, tenant).apply()

    add_officer(setup.api, setup.sso.realm, "asha")
    client = portal(keycloak, tenant)

    # The tenant's login page never shows: the first page is the state SSO's own form ...
    page = first_page(client)
    assert f"/realms/{setup.sso.realm}/" in str(page.url)
    assert "kc-form-login" in page.text
    # ... and signing in there is the whole way in.
    token = sign_in(client, "asha", PASSWORD)
    assert unverified_claims(token["access_token"])["groups"] == ["/departments/health"]


def test_provider_drift_is_named_with_secrets_hidden_and_put_back(
    keycloak: LocalKeycloak, setup: Setup
) -> None:
    _reconciler(keycloak, setup, setup.tenant).apply()
    code = setup.tenant.code
    api = setup.api
    base = f"/{code}/identity-provider/instances/state-sso"
    idp = api.get(base, "idp")
    api.put(base, {**idp, "config": {**idp["config"], "clientSecret": "typed-in-by-hand"}}, "t")
    mapper = next(
        m
        for m in api.get(f"{base}/mappers", "mappers")
        if m["config"].get("group") == "/departments/health"
    )
    api.put(
        f"{base}/mappers/{mapper['id']}",
        {
            **mapper,
            "config": {
                **mapper["config"],
                "group": "/departments/education",
                "claims": '[{"key": "dept", "value": "EDU"}]',
            },
        },
        "tamper",
    )
    setup.vault.write(code, "state-sso", "stale")

    reconciler = _reconciler(keycloak, setup, setup.tenant)
    changes = reconciler.plan()
    described = "\n".join(c.describe() for c in changes)
    assert "vault-secret" in described and "(secret)" in described
    assert "stale" not in described and setup.sso.secret not in described
    # A secret typed into the console instead of the vault expression: Keycloak masks it.
    assert "config.clientSecret: '**********' -> '${vault.state-sso}'" in described
    assert "typed-in-by-hand" not in described
    assert any(c.resource.kind == "idp-mapper" for c in changes)

    reconciler.apply()
    again = _reconciler(keycloak, setup, setup.tenant)
    assert again.apply() == []
    assert again.api.writes == 0
    assert setup.vault.read(code, "state-sso") == setup.sso.secret


def first_page(client: Client) -> httpx.Response:
    """The first page a browser shows after following the sign-in redirects."""
    url, params = authorization_request(client)
    with browser_session() as session:
        response = session.get(url, params=params)
        while response.status_code in (302, 303):
            response = session.get(urljoin(str(response.url), response.headers["Location"]))
        return response


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a token that came straight from Keycloak's token endpoint."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def make_saml_idp(api: AdminAPI, server_url: str, tenant: str, alias: str) -> dict[str, str]:
    """The state's SAML 2.0 IdP: a realm whose SAML client is the tenant realm; returns the
    tenant side's settings (endpoint, entity id, signing certificate)."""
    realm = f"saml-{uuid.uuid4().hex[:8]}"
    endpoint = f"{server_url}/realms/{tenant}/broker/{alias}/endpoint"

    def attribute(name: str, kind: str = "saml-user-attribute-mapper") -> dict[str, Any]:
        return {
            "name": name,
            "protocol": "saml",
            "protocolMapper": kind,
            "config": {
                "user.attribute": name,
                "attribute.name": name,
                "attribute.nameformat": "Basic",
                "friendly.name": name,
            },
        }

    api.post(
        "",
        {
            "realm": realm,
            "enabled": True,
            "clients": [
                {
                    # Keycloak's default entity id of a realm acting as a SAML SP.
                    "clientId": f"{server_url}/realms/{tenant}",
                    "protocol": "saml",
                    "enabled": True,
                    "redirectUris": [endpoint],
                    "attributes": {
                        "saml.assertion.signature": "true",
                        "saml.server.signature": "true",
                        "saml.client.signature": "false",
                        "saml.force.post.binding": "true",
                        "saml_assertion_consumer_url_post": endpoint,
                    },
                    "protocolMappers": [
                        *(attribute(a) for a in CLAIMS),
                        *(
                            attribute(a, "saml-user-property-mapper")
                            for a in ("email", "firstName", "lastName")
                        ),
                    ],
                }
            ],
        },
        "create the state's SAML IdP realm",
    )
    api.renew_token()
    profile = api.get(f"/{realm}/users/profile", "profile")
    api.put(
        f"/{realm}/users/profile", {**profile, "unmanagedAttributePolicy": "ENABLED"}, "profile"
    )
    keys = api.get(f"/{realm}/keys", "keys")["keys"]
    certificate = next(k["certificate"] for k in keys if k.get("algorithm") == "RS256")
    return {
        "realm": realm,
        "singleSignOnServiceUrl": f"{server_url}/realms/{realm}/protocol/saml",
        "idpEntityId": f"{server_url}/realms/{realm}",
        "signingCertificate": certificate,
    }


def test_officer_signs_in_through_a_saml_idp_with_department_post_and_role(
    keycloak: LocalKeycloak, setup: Setup
) -> None:
    saml = make_saml_idp(setup.api, keycloak.url, setup.tenant.code, "state-saml")
    try:
        provider = ExternalProvider(
            alias="state-saml",
            kind="saml",
            display_name="Sign in with the state's SAML IdP",
            config={k: v for k, v in saml.items() if k != "realm"},
            mappers=(
                ProviderMapper("dept", "HLTH", department="health"),
                ProviderMapper("designation", attribute="post"),
                ProviderMapper("karmayogi_role", "trainer", role="content_creator"),
                ProviderMapper("email", attribute="email"),
                ProviderMapper("firstName", attribute="firstName"),
                ProviderMapper("lastName", attribute="lastName"),
            ),
        )
        tenant = dataclasses.replace(setup.tenant, providers=(provider,), vault=())
        _reconciler(keycloak, setup, tenant).apply()
        add_officer(setup.api, saml["realm"], "kavita")

        token = sign_in(portal(keycloak, tenant), "kavita", PASSWORD, via_idp="state-saml")

        claims = unverified_claims(token["access_token"])
        assert claims["groups"] == ["/departments/health"]
        assert "content_creator" in claims["roles"]
        user = setup.api.get(f"/{tenant.code}/users/{claims['sub']}", "user")
        assert user["attributes"]["post"] == ["Section Officer"]
        assert user["email"] == "kavita@state.example"
        assert _reconciler(keycloak, setup, tenant).plan() == []
    finally:
        setup.api.delete(f"/{saml['realm']}", "cleanup")
