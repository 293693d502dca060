"""A throwaway tenant realm wired to the portal served by pytest-django's live server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, is_dataclass, replace
from typing import Any

import pytest
from django.core.management import call_command
from pytest_django.live_server_helper import LiveServer

from identity.admin import AdminAPI
from identity.desired import Department, Federation, PortalClient, TenantRealm
from identity.reconciler import Reconciler
from infra.targets.local.keycloak import LocalKeycloak
from infra.targets.local.runtime import admin_api
from tenant_portal.settings.contract import parse_federation

PASSWORD = "correct-horse-battery-42"


def set_portal(settings: Any, **changes: Any) -> None:
    """Swap parts of the frozen ``settings.PORTAL`` for one test (pytest-django puts it back).

    A nested part may be given as a dict of its changes (``oidc={"issuer": ...}``), and the
    federation as a ``KARMAYOGI_FEDERATION`` object, which the contract validates.
    """
    portal = settings.PORTAL
    for name, value in changes.items():
        current = getattr(portal, name)
        if name == "federation" and isinstance(value, Mapping):
            changes[name] = parse_federation(value, tenant=changes.get("tenant", portal.tenant))
        elif is_dataclass(current) and isinstance(value, dict):
            changes[name] = replace(current, **value)
    settings.PORTAL = replace(portal, **changes)


@pytest.fixture(autouse=True)
def _empty_page_cache() -> None:
    """Each test starts with no cached pages: the cache outlives a test's rolled-back rows."""
    from django.core.cache import cache

    cache.clear()


@dataclass(frozen=True)
class OidcTenant:
    tenant: TenantRealm
    hub: TenantRealm
    api: AdminAPI
    portal_url: str
    keycloak_url: str

    @property
    def issuer(self) -> str:
        return f"{self.keycloak_url}/realms/{self.tenant.code}"

    def create_user(self, username: str, *roles: str, department: str = "", **extra: Any) -> str:
        realm = self.tenant.code
        body = {
            "username": username,
            "enabled": True,
            "email": f"{username}@example.org",
            "emailVerified": True,
            "firstName": "Sunita",
            "lastName": "Devi",
            "credentials": [{"type": "password", "value": PASSWORD, "temporary": False}],
            **extra,
        }
        user_id = self.api.post(f"/{realm}/users", body, f"create user {username}")
        assert user_id
        for role in roles:
            self.grant(user_id, role)
        if department:
            parent = self.api.get(f"/{realm}/groups", "groups", search="departments")[0]
            children = self.api.get(f"/{realm}/groups/{parent['id']}/children", "departments")
            group = next(g for g in children if g["name"] == department)
            self.api.put(f"/{realm}/users/{user_id}/groups/{group['id']}", {}, "join department")
        return user_id

    def grant(self, user_id: str, role: str) -> None:
        rep = self.api.get(f"/{self.tenant.code}/roles/{role}", "role")
        self.api.post(f"/{self.tenant.code}/users/{user_id}/role-mappings/realm", [rep], "grant")

    def revoke(self, user_id: str, role: str) -> None:
        rep = self.api.get(f"/{self.tenant.code}/roles/{role}", "role")
        self.api.delete(
            f"/{self.tenant.code}/users/{user_id}/role-mappings/realm", "revoke", body=[rep]
        )


def realm_for_portal(code: str, portal_url: str, *, broker: bool = False) -> TenantRealm:
    return TenantRealm(
        code=code,
        display_name=f"{code} Karmayogi",
        languages=("en", "hi"),
        departments=(Department("health", "Health Department"),),
        portal=PortalClient(
            base_url=portal_url,
            redirect_uris=(f"{portal_url}/auth/callback/",),
            post_logout_redirect_uris=(f"{portal_url}/",),
            backchannel_logout_url=f"{portal_url}/auth/backchannel-logout/",
            secret=f"portal-secret-{code}",
        ),
        broker_to_hub=broker,
        broker_secret=f"broker-{code}",
        federation_secret=f"federation-{code}",
    )


@pytest.fixture
def oidc_tenant(
    keycloak: LocalKeycloak, live_server: LiveServer, settings: Any
) -> Iterator[OidcTenant]:
    """A hub and a brokered tenant realm whose portal client points at the live server."""
    suffix = uuid.uuid4().hex[:8]
    portal_url = live_server.url
    hub = realm_for_portal(f"hub-{suffix}", "http://127.0.0.1:9")
    tenant = realm_for_portal(f"state-{suffix}", portal_url, broker=True)
    api = admin_api(keycloak)
    Reconciler(api, Federation(keycloak.url, (hub, tenant), hub)).apply()
    issuer = f"{keycloak.url}/realms/{tenant.code}"
    endpoints = f"{issuer}/protocol/openid-connect"
    settings.OIDC_RP_CLIENT_ID = "portal"
    settings.OIDC_RP_CLIENT_SECRET = tenant.portal.secret
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = f"{endpoints}/auth"
    settings.OIDC_OP_TOKEN_ENDPOINT = f"{endpoints}/token"
    settings.OIDC_OP_USER_ENDPOINT = f"{endpoints}/userinfo"
    settings.OIDC_OP_JWKS_ENDPOINT = f"{endpoints}/certs"
    settings.OIDC_OP_END_SESSION_ENDPOINT = f"{endpoints}/logout"
    set_portal(
        settings,
        portal_url=portal_url,
        oidc={
            "issuer": issuer,
            "client_id": "portal",
            "client_secret": tenant.portal.secret,
            "hub_idp": hub.code,
            "hub_name": hub.display_name,
        },
    )
    call_command("sync_site", verbosity=0)
    yield OidcTenant(tenant, hub, api, portal_url, keycloak.url)
    for code in (tenant.code, hub.code):
        api.delete(f"/{code}", "cleanup")
