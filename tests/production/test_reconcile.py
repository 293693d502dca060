"""Tenant realms on the production Keycloak: reconciled, and branded by the theme JAR."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx

from identity.reconciler import Reconciler
from tests.production.conftest import ProductionServer, Reconciled


def test_a_second_plan_is_empty(reconciled: Reconciled) -> None:
    reconciled.api.renew_token()
    assert Reconciler(reconciled.api, reconciled.federation).plan() == []


def test_realms_use_the_jar_themes(
    production_keycloak: ProductionServer, reconciled: Reconciled
) -> None:
    api, federation = reconciled.api, reconciled.federation
    assert federation.hub is not None
    hub_issuer = f"{production_keycloak.hostname}/realms/{federation.hub.code}"
    for realm, theme in zip(federation.tenants, production_keycloak.themes, strict=True):
        assert api.get(f"/{realm.code}", "realm")["loginTheme"] == theme.name
    (state,) = (t for t in federation.tenants if t.code != federation.hub.code)
    idp = api.get(f"/{state.code}/identity-provider/instances", "idps")[0]
    assert idp["config"]["issuer"] == hub_issuer


def test_the_login_page_is_branded(
    production_keycloak: ProductionServer, reconciled: Reconciled
) -> None:
    server = production_keycloak
    federation = reconciled.federation
    public = urlsplit(server.hostname)
    # What the TLS proxy sends on: the public Host and scheme, the browser's address.
    proxied = {
        "Host": public.netloc,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": public.netloc,
        "X-Forwarded-Port": "443",
        "X-Forwarded-For": "203.0.113.7",
    }
    for realm, theme in zip(federation.tenants, server.themes, strict=True):
        response = httpx.get(
            f"{server.url}/realms/{realm.code}/protocol/openid-connect/auth",
            params={
                "client_id": "portal",
                "response_type": "code",
                "redirect_uri": realm.portal.redirect_uris[0],
                "scope": "openid",
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256",
            },
            headers=proxied,
        )
        assert response.status_code == 200, response.text[:500]
        html = response.text
        assert re.search(rf"/login/{theme.name}/css/karmayogi\.css", html), html[:2000]
        # Every URL the page links to is on the public hostname, none on the internal one.
        action = re.search(r'action="([^"]+)"', html)
        assert action and action.group(1).startswith(f"{server.hostname}/realms/{realm.code}/")
        assert server.url not in html
