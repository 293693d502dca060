"""Rendering: tenant specs plus the target's decisions into typed inputs for each part.

For the local target the kit decides network addresses: every portal gets its own loopback
address (127.0.0.2, 127.0.0.3, ...; browsers keep cookies per host, not per port) and a port
free on it. Assignments are kept under the kit's home so URLs, and so the realms' redirect
URIs, stay the same from one ``up`` to the next. Secrets are generated once per tenant and
kept under the home too, never in the spec.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from identity.desired import DEMO_ROLE, Department, Federation, PortalClient, TenantRealm
from identity.themes import LoginTheme, theme_name
from infra.home import KitHome, new_password, read_json, write_private_json
from infra.net import free_port, port_is_free
from infra.render.colors import accessible_palette
from infra.spec import TenantSpec
from infra.spec.languages import LANGUAGES

FIRST_LOCAL_ADDRESS = ipaddress.IPv4Address("127.0.0.2")
DEFAULT_PORTAL_PORT = 8000
SECRET_NAMES = ("portal_client_secret", "broker_client_secret", "federation_client_secret")


@dataclass(frozen=True)
class LocalEndpoint:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def local_endpoints(specs: Sequence[TenantSpec], home: KitHome) -> dict[str, LocalEndpoint]:
    """Each tenant's loopback address and port, assigned once and then kept."""
    path = home.rendered / "local-endpoints.json"
    saved = read_json(path) or {}
    endpoints = {
        code: LocalEndpoint(str(value["host"]), int(value["port"]))
        for code, value in saved.items()
        if isinstance(value, dict)
    }
    taken = {ipaddress.IPv4Address(e.host) for e in endpoints.values()}
    changed = False
    for spec in sorted(specs, key=lambda s: (not s.is_hub, s.code)):
        if spec.code in endpoints:
            continue
        address = FIRST_LOCAL_ADDRESS
        while address in taken:
            address += 1
        taken.add(address)
        host = str(address)
        port = DEFAULT_PORTAL_PORT if port_is_free(DEFAULT_PORTAL_PORT, host) else free_port(host)
        endpoints[spec.code] = LocalEndpoint(host, port)
        changed = True
    if changed:
        write_private_json(
            path, {c: {"host": e.host, "port": e.port} for c, e in endpoints.items()}
        )
    return endpoints


def tenant_secrets(code: str, home: KitHome) -> dict[str, str]:
    """The tenant's generated secrets, created on first use and kept 0600 under the home."""
    path = home.secrets / f"tenant-{code}.json"
    data = read_json(path) or {}
    missing = [name for name in SECRET_NAMES if not data.get(name)]
    if missing:
        data.update({name: new_password() for name in missing})
        write_private_json(path, data)
    return {k: str(v) for k, v in data.items()}


def login_theme(spec: TenantSpec) -> LoginTheme:
    logo = spec.logo_path
    colors = spec.spec.branding.colors
    palette = accessible_palette(colors.primary, colors.accent)
    return LoginTheme(
        name=theme_name(spec.code),
        display_name=spec.spec.branding.display_name,
        logo=logo.read_bytes(),
        logo_suffix=logo.suffix.lower(),
        primary=palette.primary,
        accent=palette.accent,
        on_primary=palette.on_primary,
        languages=tuple(spec.spec.languages),
    )


def portal_client(endpoint: LocalEndpoint, secret: str) -> PortalClient:
    """The portal's OIDC client as the portal's routes expect it."""
    base = endpoint.url
    return PortalClient(
        base_url=base,
        redirect_uris=(f"{base}/auth/callback/",),
        post_logout_redirect_uris=(f"{base}/",),
        backchannel_logout_url=f"{base}/auth/backchannel-logout/",
        secret=secret,
    )


def tenant_realm(spec: TenantSpec, endpoint: LocalEndpoint, home: KitHome) -> TenantRealm:
    secrets = tenant_secrets(spec.code, home)
    identity = spec.spec.identity
    return TenantRealm(
        code=spec.code,
        display_name=spec.spec.branding.display_name,
        languages=tuple(spec.spec.languages),
        departments=tuple(Department(d.code, d.name) for d in identity.departments),
        portal=portal_client(endpoint, secrets["portal_client_secret"]),
        broker_to_hub=identity.broker_to_hub,
        admin_otp_required=identity.admin_otp == "required",
        # The embedded default's demo administrators sign in without OTP (infra/demo.py).
        otp_exempt_role=DEMO_ROLE,
        login_theme=theme_name(spec.code),
        keys_url=f"{endpoint.url}/federation/v1/keys",
        broker_secret=secrets["broker_client_secret"],
        federation_secret=secrets["federation_client_secret"],
    )


def local_federation(specs: Sequence[TenantSpec], home: KitHome, keycloak_url: str) -> Federation:
    """The federation the local target runs: every spec on one Keycloak."""
    endpoints = local_endpoints(specs, home)
    tenants = tuple(tenant_realm(s, endpoints[s.code], home) for s in specs)
    hub_codes = {s.code for s in specs if s.is_hub}
    hub = next((t for t in tenants if t.code in hub_codes), None)
    return Federation(server_url=keycloak_url, tenants=tenants, hub=hub)


def shared_static_root(home: KitHome) -> Path:
    return home.root / "static"


def portal_data_dir(code: str, home: KitHome) -> Path:
    """The portal's database, media, static files and secret key on the local target."""
    return home.root / "portals" / code


def portal_env(
    spec: TenantSpec, specs: Sequence[TenantSpec], home: KitHome, keycloak_url: str
) -> dict[str, str]:
    """The environment one portal instance runs with on the local target."""
    endpoint = local_endpoints(specs, home)[spec.code]
    secrets = tenant_secrets(spec.code, home)
    branding = spec.spec.branding
    palette = accessible_palette(branding.colors.primary, branding.colors.accent)
    languages = [
        {
            "code": code,
            "name": LANGUAGES[code].english_name,
            "name_local": LANGUAGES[code].native_name,
            "bidi": LANGUAGES[code].rtl,
        }
        for code in spec.spec.languages
    ]
    hub = next((s for s in specs if s.is_hub), None)
    brokered = spec.spec.identity.broker_to_hub and hub is not None and hub.code != spec.code
    data_dir = portal_data_dir(spec.code, home)
    return {
        "DJANGO_SETTINGS_MODULE": "tenant_portal.settings.dev",
        "KARMAYOGI_TENANT": spec.code,
        "KARMAYOGI_TENANT_TYPE": spec.metadata.type,
        "KARMAYOGI_SITE_NAME": branding.display_name,
        "KARMAYOGI_DOMAIN": spec.spec.domain,
        "KARMAYOGI_PORTAL_URL": endpoint.url,
        "KARMAYOGI_DATA_DIR": str(data_dir),
        "DATABASE_URL": f"sqlite:///{data_dir / 'portal.sqlite3'}",
        # Every local portal runs the same code: one collected copy of the static files.
        "KARMAYOGI_STATIC_ROOT": str(shared_static_root(home)),
        "KARMAYOGI_LANGUAGES": json.dumps(languages, ensure_ascii=False),
        "KARMAYOGI_DEPARTMENTS": json.dumps(
            {d.code: d.name for d in spec.spec.identity.departments}, ensure_ascii=False
        ),
        "KARMAYOGI_LOGO": str(spec.logo_path),
        "KARMAYOGI_PRIMARY": palette.primary,
        "KARMAYOGI_ON_PRIMARY": palette.on_primary,
        "KARMAYOGI_ACCENT": palette.accent,
        "KARMAYOGI_ON_ACCENT": palette.on_accent,
        "KARMAYOGI_LINK": palette.link,
        "KARMAYOGI_OIDC_ISSUER": f"{keycloak_url}/realms/{spec.code}",
        "KARMAYOGI_OIDC_CLIENT_ID": "portal",
        "KARMAYOGI_OIDC_CLIENT_SECRET": secrets["portal_client_secret"],
        "KARMAYOGI_HUB_IDP": hub.code if brokered and hub else "",
        "KARMAYOGI_HUB_NAME": hub.spec.branding.display_name if brokered and hub else "",
        "KARMAYOGI_FEDERATION": json.dumps(
            federation_config(spec, specs, home, keycloak_url, secrets["federation_client_secret"])
        ),
        "DJANGO_ALLOWED_HOSTS": endpoint.host,
    }


def federation_config(
    spec: TenantSpec, specs: Sequence[TenantSpec], home: KitHome, keycloak_url: str, secret: str
) -> dict[str, Any]:
    """What the portal's federation needs (``settings.FEDERATION``): its token client in the
    hub realm, the peers it pulls (a tenant: the hub; the hub: every tenant that publishes),
    every instance's keys URL (the same values the reconciler registers on the
    ``federation-<code>`` clients) and display name, the hub portal's URL (where xAPI
    statements go), and the tenant's subscription."""
    endpoints = local_endpoints(specs, home)
    hub = next((s for s in specs if s.is_hub), None)
    if hub is None:
        return {"code": spec.code, "isHub": False, "peers": []}
    if spec.is_hub:
        peers = [s for s in specs if not s.is_hub and s.spec.federation.publish]
    else:
        peers = [hub] if spec.hub_code == hub.code else []
    subscribe = spec.spec.federation.subscribe
    return {
        "code": spec.code,
        "isHub": spec.is_hub,
        "hub": hub.code,
        "hubIssuer": f"{keycloak_url}/realms/{hub.code}",
        "hubUrl": endpoints[hub.code].url,
        "clientId": f"federation-{spec.code}",
        "clientSecret": secret,
        "publish": spec.is_hub or spec.spec.federation.publish,
        "peers": [{"code": p.code, "url": endpoints[p.code].url} for p in peers],
        "keys": {s.code: f"{endpoints[s.code].url}/federation/v1/keys" for s in specs},
        "names": {s.code: s.spec.branding.display_name for s in specs},
        "subscribe": None
        if spec.is_hub
        else {
            "languages": list(subscribe.languages),
            "competencyAreas": list(subscribe.competency_areas),
        },
    }


def portal_env_path(code: str, home: KitHome) -> Path:
    return home.rendered / code / "portal.env.json"


def write_portal_env(
    spec: TenantSpec, specs: Sequence[TenantSpec], home: KitHome, keycloak_url: str
) -> Path:
    """Write the portal's environment as a 0600 JSON file (it holds the client secret)."""
    path = portal_env_path(spec.code, home)
    write_private_json(path, portal_env(spec, specs, home, keycloak_url))
    return path
