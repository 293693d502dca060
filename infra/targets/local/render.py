"""The local target's placement and secret store, and the portal env files it writes.

Every portal gets its own loopback address (127.0.0.2, 127.0.0.3, ...; browsers keep cookies
per host, not per port) and a port free on it. Assignments are kept under the kit's home so
URLs, and so the realms' redirect URIs, stay the same from one ``up`` to the next. Secrets are
generated once per tenant and kept 0600 under the home too, never in the spec.

With public names (``KARMAYOGI_PUBLIC_NAMES=1`` at ``up``, remembered by the home) the portals
and Keycloak still listen on loopback, but are known by the specs' names: portals at
``https://<domain>``, Keycloak at ``https://<identity.loginDomain>``, reached through a
TLS-terminating proxy the operator runs in front (``karmayogi status`` lists its routes). That
is how a laptop or a single box takes part in a federation across deployments, where the hub
and the other members must reach it by name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from identity.desired import Federation
from infra.errors import KitError
from infra.home import KitHome, new_password, read_json, write_private_json
from infra.net import free_port, port_is_free
from infra.render.inputs import CLIENT_SECRETS, HubLink, PortalRuntime, Secret
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
# Where a new home's portals start instead (two homes side by side on one machine).
LOCAL_ADDRESS_ENV = "KARMAYOGI_LOCAL_ADDRESS"


@dataclass(frozen=True)
class LocalEndpoint:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def first_local_address(env: Mapping[str, str]) -> ipaddress.IPv4Address:
    """The first address portals are given: 127.0.0.2, or ``KARMAYOGI_LOCAL_ADDRESS``."""
    given = env.get(LOCAL_ADDRESS_ENV, "").strip()
    if not given:
        return FIRST_LOCAL_ADDRESS
    try:
        address = ipaddress.IPv4Address(given)
    except ValueError:
        address = None
    if address is None or not address.is_loopback or int(address) & 0xFF in (0, 255):
        raise KitError(f"{LOCAL_ADDRESS_ENV}={given!r}: give a loopback address such as 127.0.2.2")
    return address


def local_endpoints(
    specs: Sequence[TenantSpec], home: KitHome, first: ipaddress.IPv4Address = FIRST_LOCAL_ADDRESS
) -> dict[str, LocalEndpoint]:
    """Each tenant's loopback address and port, assigned once (from ``first`` upwards) and
    then kept."""
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
        address = first
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


PUBLIC_NAMES_ENV = "KARMAYOGI_PUBLIC_NAMES"


def _names_path(home: KitHome) -> Path:
    return home.rendered / "public-names.json"


def public_keycloak_url(home: KitHome) -> str | None:
    """Keycloak's public URL when the home runs with public names, else None."""
    url = (read_json(_names_path(home)) or {}).get("keycloak")
    return url if isinstance(url, str) and url else None


def remember_names(specs: Sequence[TenantSpec], home: KitHome, env: dict[str, str]) -> None:
    """Record ``KARMAYOGI_PUBLIC_NAMES`` (1 or 0) in the home, when it is set: every later
    command of this home then renders the same URLs. Public names need one login domain."""
    wanted = env.get(PUBLIC_NAMES_ENV, "").strip().lower()
    if not wanted:
        return
    if wanted in ("0", "false", "no"):
        _names_path(home).unlink(missing_ok=True)
        return
    domains = sorted({spec.login_domain for spec in specs})
    if len(domains) != 1:
        raise KitError(
            f"{PUBLIC_NAMES_ENV}: one Keycloak serves every realm of this home, so the specs "
            f"must share identity.loginDomain; they name {', '.join(domains) or 'none'}"
        )
    write_private_json(_names_path(home), {"keycloak": f"https://{domains[0]}"})


@dataclass(frozen=True)
class LocalPlacement:
    """Portals on their loopback addresses, every realm on the one loopback Keycloak; with
    public names (``domains``), both known by the specs' names behind the operator's proxy."""

    endpoints: dict[str, LocalEndpoint]
    keycloak: str
    home: KitHome
    domains: dict[str, str] | None = None

    def portal_url(self, code: str) -> str:
        if self.domains is not None:
            return f"https://{self.domains[code]}"
        return self.endpoints[code].url

    def keycloak_url(self, code: str) -> str:
        return self.keycloak

    def portal_runtime(self, code: str) -> PortalRuntime:
        hosts: tuple[str, ...] = (self.endpoints[code].host,)
        if self.domains is not None:
            hosts += (self.domains[code],)
        return PortalRuntime(
            settings_module="tenant_portal.settings.dev",
            data_dir=str(portal_data_dir(code, self.home)),
            # Every local portal runs the same code: one collected copy of the static files.
            static_root=str(shared_static_root(self.home)),
            allowed_hosts=hosts,
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

    def stored(self, code: str) -> dict[str, str]:
        """What the tenant's file holds, without making anything (other targets read the
        state's secrets, kept here by `karmayogi identity secret`, from it)."""
        return {k: str(v) for k, v in (read_json(self.path(code)) or {}).items()}

    def put(self, code: str, values: dict[str, str]) -> None:
        """Replace some of the tenant's secrets (those a remote hub's credentials carry)."""
        write_private_json(self.path(code), self.values(code) | values)


def _hub_link_path(code: str, home: KitHome) -> Path:
    return home.rendered / code / "hub-link.json"


def hub_links(home: KitHome) -> dict[str, HubLink]:
    """The remote hubs the home's tenants accepted credentials from, by tenant code."""
    links = {}
    for path in sorted(home.rendered.glob("*/hub-link.json")):
        data = read_json(path) or {}
        try:
            links[path.parent.name] = HubLink(
                str(data["code"]), str(data["name"]), str(data["url"]), str(data["issuer"])
            )
        except KeyError:
            continue
    return links


def save_hub_link(code: str, link: HubLink, home: KitHome) -> None:
    write_private_json(_hub_link_path(code, home), vars(link))


def browser_keycloak_url(home: KitHome, keycloak_url: str) -> str:
    """Where browsers and portals reach Keycloak: its public URL, or its loopback one."""
    return public_keycloak_url(home) or keycloak_url


def render_local(
    specs: Sequence[TenantSpec], home: KitHome, keycloak_url: str
) -> tuple[RenderedTenant, ...]:
    """The local federation, rendered: every spec in the folder, whatever its target says."""
    public = public_keycloak_url(home)
    placement = LocalPlacement(
        local_endpoints(specs, home),
        public or keycloak_url,
        home,
        {spec.code: spec.spec.domain for spec in specs} if public else None,
    )
    logos = {spec.code: spec.logo_path.read_bytes() for spec in specs}
    return render_tenants(
        specs, placement, LocalSecretStore(home), logos, demo=True, hub_links=hub_links(home)
    )


def local_federation(specs: Sequence[TenantSpec], home: KitHome, keycloak_url: str) -> Federation:
    """The federation the local target runs: every spec on one Keycloak."""
    return federation_of(
        render_local(specs, home, keycloak_url), browser_keycloak_url(home, keycloak_url)
    )


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
