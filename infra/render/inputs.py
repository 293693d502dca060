"""What render is handed: where each part is reached (a placement) and where secrets live.

Render decides *what* each tenant is; these two protocols carry the target's decisions into
it, so render itself reads no files and probes no ports. The local target places portals on
loopback addresses and keeps secrets in 0600 files under the kit's home; production targets
place them at the spec's hostnames and keep secrets in their own stores (Ansible Vault,
Kubernetes Secrets, AWS Secrets Manager), of which render sees only references.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

# Secrets every tenant has, whatever the target: made once, never in the spec.
PORTAL_CLIENT_SECRET = "portal_client_secret"
BROKER_CLIENT_SECRET = "broker_client_secret"
FEDERATION_CLIENT_SECRET = "federation_client_secret"
DJANGO_SECRET_KEY = "django_secret_key"
DATABASE_URL = "database_url"
CLIENT_SECRETS = (PORTAL_CLIENT_SECRET, BROKER_CLIENT_SECRET, FEDERATION_CLIENT_SECRET)


@dataclass(frozen=True)
class Secret:
    """A secret as render knows it: where it is kept and, when the store can tell, its value.

    ``reference`` is safe to print and to write into rendered files (``file:…#name``,
    ``vault:…``, ``secret:…``); ``value`` never is.
    """

    name: str
    reference: str
    value: str | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return self.reference


def map_secrets(value: Any, secret: Callable[[Secret], Any]) -> Any:
    """``value`` (settings: dicts, lists, scalars) with every ``Secret`` replaced by
    ``secret(it)``; the one walk behind revealing, referring to and checking secrets."""
    if isinstance(value, Secret):
        return secret(value)
    if isinstance(value, dict):
        return {k: map_secrets(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [map_secrets(v, secret) for v in value]
    return value


def secrets_in(value: Any) -> list[Secret]:
    """Every ``Secret`` in ``value``, in order."""
    found: list[Secret] = []
    map_secrets(value, found.append)
    return found


class SecretStore(Protocol):
    """Where a target keeps each tenant's secrets."""

    def secret(self, code: str, name: str) -> Secret:
        """The tenant's secret ``name`` (one of this module's names)."""
        ...


@dataclass(frozen=True)
class PortalRuntime:
    """Where and how a portal runs, as its target decides it."""

    settings_module: str  # tenant_portal.settings.dev | production
    data_dir: str
    static_root: str
    media_root: str | None = None  # default: <data_dir>/media
    logo_path: str | None = None  # where the target puts the logo; default: the spec's file
    allowed_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class HubLink:
    """A hub run in another deployment, as the tenant learnt it by accepting its credentials
    (``karmayogi federation accept``): where its portal and its realm are. The client secrets
    that came with it are in the tenant's secret store, not here."""

    code: str
    name: str
    url: str  # the hub portal's URL, as the tenant's spec names it
    issuer: str  # the hub realm's issuer, https://<hub loginDomain>/realms/<hub code>


class Placement(Protocol):
    """Where each part of a deployment is reached, as its target decides it."""

    def portal_url(self, code: str) -> str:
        """The portal's base URL, without a trailing slash."""
        ...

    def keycloak_url(self, code: str) -> str:
        """The base URL of the Keycloak serving the tenant's realm, as browsers reach it."""
        ...

    def portal_runtime(self, code: str) -> PortalRuntime:
        """Where the portal keeps its data and which settings it runs with."""
        ...
