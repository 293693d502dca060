"""The local target's placement and secret store, and the portal env files it writes.

Every portal gets its own loopback address (127.0.0.2, 127.0.0.3, ...; browsers keep cookies
per host, not per port) and a port free on it. Assignments are kept under the kit's home so
URLs, and so the realms' redirect URIs, stay the same from one ``up`` to the next. Secrets are
generated once per tenant and kept 0600 under the home too, never in the spec.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from identity.desired import Federation
from infra.home import KitHome, new_password, read_json, write_private_json
from infra.net import free_port, port_is_free
from infra.render.inputs import CLIENT_SECRETS, PortalRuntime, Secret
from infra.render.portal import validate_portal_settings
from infra.render.tenant import (
    RenderedTenant,
    as_environment,
    federation_of,
    render_tenants,
    reveal,
)
from infra.spec import TenantSpec

FIRST_LOCAL_ADDRESS = ipaddress.IPv4Address("127.0.0.2")
DEFAULT_PORTAL_PORT = 8000


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


def shared_static_root(home: KitHome) -> Path:
    return home.root / "static"


def portal_data_dir(code: str, home: KitHome) -> Path:
    """The portal's database, media, static files and secret key on the local target."""
    return home.root / "portals" / code


@dataclass(frozen=True)
class LocalPlacement:
    """Portals on their loopback addresses, every realm on the one loopback Keycloak."""

    endpoints: dict[str, LocalEndpoint]
    keycloak: str
    home: KitHome

    def portal_url(self, code: str) -> str:
        return self.endpoints[code].url

    def keycloak_url(self, code: str) -> str:
        return self.keycloak

    def portal_runtime(self, code: str) -> PortalRuntime:
        return PortalRuntime(
            settings_module="tenant_portal.settings.dev",
            data_dir=str(portal_data_dir(code, self.home)),
            # Every local portal runs the same code: one collected copy of the static files.
            static_root=str(shared_static_root(self.home)),
            allowed_hosts=(self.endpoints[code].host,),
        )


@dataclass(frozen=True)
class LocalSecretStore:
    """Client secrets made once per tenant, kept in ``secrets/tenant-<code>.json`` (0600).

    The portal's Django secret key is made by the dev settings beside its database.
    """

    home: KitHome

    def path(self, code: str) -> Path:
        return self.home.secrets / f"tenant-{code}.json"

    def values(self, code: str) -> dict[str, str]:
        path = self.path(code)
        data = read_json(path) or {}
        missing = [name for name in CLIENT_SECRETS if not data.get(name)]
        if missing:
            data.update({name: new_password() for name in missing})
            write_private_json(path, data)
        return {k: str(v) for k, v in data.items()}

    def secret(self, code: str, name: str) -> Secret:
        return Secret(name, f"file:{self.path(code)}#{name}", self.values(code).get(name))


def render_local(
    specs: Sequence[TenantSpec], home: KitHome, keycloak_url: str
) -> tuple[RenderedTenant, ...]:
    """The local federation, rendered: every spec in the folder, whatever its target says."""
    placement = LocalPlacement(local_endpoints(specs, home), keycloak_url, home)
    logos = {spec.code: spec.logo_path.read_bytes() for spec in specs}
    return render_tenants(specs, placement, LocalSecretStore(home), logos, demo=True)


def local_federation(specs: Sequence[TenantSpec], home: KitHome, keycloak_url: str) -> Federation:
    """The federation the local target runs: every spec on one Keycloak."""
    return federation_of(render_local(specs, home, keycloak_url), keycloak_url)


def portal_env_path(code: str, home: KitHome) -> Path:
    return home.rendered / code / "portal.env.json"


def write_portal_env(
    spec: TenantSpec, specs: Sequence[TenantSpec], home: KitHome, keycloak_url: str
) -> Path:
    """Write the portal's environment as a 0600 JSON file (it holds the client secret),
    after checking it against the portal's settings contract."""
    rendered = next(r for r in render_local(specs, home, keycloak_url) if r.code == spec.code)
    settings = reveal(rendered.portal)
    validate_portal_settings(settings, source=f"the rendered settings of {spec.code}")
    path = portal_env_path(spec.code, home)
    write_private_json(path, as_environment(settings))
    return path
