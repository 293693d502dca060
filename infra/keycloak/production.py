"""Keycloak's production configuration, rendered once and used by every non-local target.

Every target but local runs the same two steps on the pinned release: ``kc.sh build`` (which
reads the build-time options below and registers the JARs in ``providers/``, the tenants'
login themes among them) and ``kc.sh start --optimized`` (which reads the runtime options).
Both read one ``conf/keycloak.conf``, rendered here with a comment above each option saying
where its value came from.

Keycloak sits behind a TLS-terminating proxy (nginx on a VM, an ingress on Kubernetes) under
one public hostname per deployment: it serves plain HTTP to the proxy, trusts its
``X-Forwarded-*`` headers, and answers health and metrics on the management port, which the
proxy never exposes.

Secrets never enter the file: Keycloak reads them from the environment, and each target fills
those variables from its own secret store (:data:`SECRET_ENV_VARS`, :func:`secret_env`). This
module only decides; it reads no file and no environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from infra.keycloak.release import KEYCLOAK_VERSION, KeycloakRuntimeError

# Environment variables that carry a secret: a target fills them from its secret store (a
# Kubernetes Secret, Ansible Vault, AWS Secrets Manager) and never writes them to a file
# anyone but Keycloak's service reads.
SECRET_ENV_VARS = ("KC_DB_PASSWORD", "KC_BOOTSTRAP_ADMIN_CLIENT_SECRET")
# The temporary bootstrap client: a service account with the master realm's admin role,
# made by Keycloak only when it creates the master realm (its first start on an empty
# database), then replaced by the kit's permanent accounts (infra.keycloak.accounts).
BOOTSTRAP_CLIENT_ID_ENV = "KC_BOOTSTRAP_ADMIN_CLIENT_ID"
BOOTSTRAP_CLIENT_SECRET_ENV = "KC_BOOTSTRAP_ADMIN_CLIENT_SECRET"
DEFAULT_BOOTSTRAP_CLIENT_ID = "karmayogi-bootstrap"
# Options that must never be written to keycloak.conf (a secret in a config file is readable
# by whoever reads the config); render_conf refuses them.
SECRET_OPTIONS = frozenset(
    {
        "db-password",
        "bootstrap-admin-password",
        "bootstrap-admin-client-secret",
        "cache-remote-password",
        "cache-embedded-mtls-key-store-password",
        "cache-embedded-mtls-trust-store-password",
        "https-key-store-password",
        "https-trust-store-password",
        "truststore-password",
        "vault-pass",
    }
)

HTTP_PORT = 8080
MANAGEMENT_PORT = 9000
# The JVM heap's floor; its cap is the deployment size's ``keycloak_heap``
# (infra/render/sizes.py). Without a cap Keycloak 24+ takes up to 70 % of a container's memory.
HEAP_FLOOR = "64m"
_HEAP = re.compile(r"^[1-9][0-9]*[mg]$")


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives in the target's store; never the secret itself.

    ``name`` is what the store calls it (an Ansible Vault variable, a Kubernetes Secret, a
    Secrets Manager id) and ``key`` the entry within it where the store has entries.
    """

    name: str
    key: str = "password"


@dataclass(frozen=True)
class Database:
    """Keycloak's PostgreSQL database; the password is read from ``KC_DB_PASSWORD``."""

    host: str
    name: str
    username: str
    password: SecretRef
    port: int = 5432
    # JDBC URL properties, starting with '?', e.g. '?sslmode=verify-full' for a managed database.
    url_properties: str = ""


@dataclass(frozen=True)
class ProductionKeycloak:
    """What decides one deployment's production Keycloak.

    ``hostname`` is the public URL browsers and tokens use (``https://<loginDomain>``).
    ``internal_url``, when set, is how the deployment's own services (portals, the
    reconciler) reach Keycloak without the proxy; Keycloak then answers backchannel requests
    there (``hostname-backchannel-dynamic``) while tokens keep the public issuer.
    """

    hostname: str
    database: Database
    bootstrap_secret: SecretRef
    replicas: int = 1
    heap: str = "768m"  # -Xmx, from the deployment size's keycloak_heap
    internal_url: str | None = None
    http_host: str = "0.0.0.0"
    http_port: int = HTTP_PORT
    management_port: int = MANAGEMENT_PORT
    # Addresses (or CIDRs) of the proxy; X-Forwarded-* from anyone else is ignored. Empty:
    # every address is trusted, so Keycloak must then be reachable only through the proxy.
    proxy_trusted_addresses: tuple[str, ...] = ()
    # Extra CAs Keycloak trusts as a client (a remote hub's or an IdP's private CA).
    truststore_paths: tuple[str, ...] = ()
    # Keycloak's file vault: the folder of ``<realm>_<name>`` files realms read as
    # ``${vault.<name>}`` (providers' and mail secrets); None: no vault.
    vault_dir: str | None = None
    features: tuple[str, ...] = ()
    log_format: Literal["default", "json"] = "default"
    log_level: str = "info"
    bootstrap_client_id: str = DEFAULT_BOOTSTRAP_CLIENT_ID
    version: str = KEYCLOAK_VERSION
    # Where each input came from in the spec or the target, for the rendered comments.
    origins: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        url = urlsplit(self.hostname)
        if url.scheme != "https" or not url.hostname or url.path not in ("", "/"):
            raise KeycloakRuntimeError(
                f"Keycloak's hostname must be a full https URL without a path, like "
                f"https://auth.bihar.example, not {self.hostname!r}"
            )
        if self.internal_url is not None and urlsplit(self.internal_url).scheme not in (
            "http",
            "https",
        ):
            raise KeycloakRuntimeError(
                f"Keycloak's internal URL {self.internal_url!r} is not an http(s) URL"
            )
        if self.replicas < 1:
            raise KeycloakRuntimeError(f"Keycloak needs at least one replica, not {self.replicas}")
        if self.http_port == self.management_port:
            raise KeycloakRuntimeError(
                f"Keycloak's HTTP and management ports must differ (both {self.http_port})"
            )
        if not _HEAP.match(self.heap):
            raise KeycloakRuntimeError(
                f"Keycloak's heap must be a JVM size like 768m or 3g, not {self.heap!r}"
            )

    @property
    def clustered(self) -> bool:
        return self.replicas > 1

    def origin(self, what: str, default: str) -> str:
        return self.origins.get(what, default)


# --- options ---------------------------------------------------------------------------------


def build_options(kc: ProductionKeycloak) -> dict[str, str]:
    """Options fixed by ``kc.sh build``; ``start --optimized`` refuses to change them."""
    options = {
        "db": "postgres",
        "health-enabled": "true",
        "metrics-enabled": "true",
    }
    if kc.features:
        options["features"] = ",".join(kc.features)
    if kc.vault_dir is not None:
        options["vault"] = "file"
    return options


def runtime_options(kc: ProductionKeycloak) -> dict[str, str]:
    """Options ``kc.sh start --optimized`` reads at every start."""
    db = kc.database
    options = {
        "hostname": kc.hostname.rstrip("/"),
        "hostname-strict": "true",
    }
    if kc.internal_url is not None:
        options["hostname-backchannel-dynamic"] = "true"
    options |= {
        "proxy-headers": "xforwarded",
        "http-enabled": "true",
        "http-host": kc.http_host,
        "http-port": str(kc.http_port),
        "http-management-port": str(kc.management_port),
    }
    if kc.proxy_trusted_addresses:
        options["proxy-trusted-addresses"] = ",".join(kc.proxy_trusted_addresses)
    # In 26.4 the cache options are runtime options; a clustered Keycloak finds its peers
    # through the shared database (jdbc-ping, the default stack since 26.1; 'kubernetes' is
    # deprecated), so the same setting works on VMs and in Kubernetes.
    if kc.clustered:
        options |= {"cache": "ispn", "cache-stack": "jdbc-ping"}
    else:
        options["cache"] = "local"
    options |= {
        "db-url-host": db.host,
        "db-url-port": str(db.port),
        "db-url-database": db.name,
    }
    if db.url_properties:
        options["db-url-properties"] = db.url_properties
    options["db-username"] = db.username
    if kc.truststore_paths:
        options["truststore-paths"] = ",".join(kc.truststore_paths)
    if kc.vault_dir is not None:
        options["vault-dir"] = kc.vault_dir
    options |= {
        "log": "console",
        "log-console-output": kc.log_format,
        "log-level": kc.log_level,
    }
    return options


def options(kc: ProductionKeycloak) -> dict[str, str]:
    """Every option of ``keycloak.conf``: build-time first, then runtime."""
    return build_options(kc) | runtime_options(kc)


def source_notes(kc: ProductionKeycloak) -> dict[str, str]:
    """For each option of :func:`options`, where its value came from."""
    db = kc.database
    database = kc.origin("database", "the target's PostgreSQL")
    notes = {
        "db": "the kit: production Keycloak runs on PostgreSQL",
        "health-enabled": "the kit: /health/ready on the management port for probes",
        "metrics-enabled": "the kit: /metrics on the management port",
        "features": kc.origin("features", "the target's Keycloak features"),
        "hostname": kc.origin("hostname", "spec identity.loginDomain, served over HTTPS"),
        "hostname-strict": "the kit: URLs never follow a request's Host header",
        "hostname-backchannel-dynamic": kc.origin(
            "internal_url",
            "the target: services reach Keycloak at an internal URL",
        ),
        "proxy-headers": "the kit: TLS ends at the proxy, which sends X-Forwarded-*",
        "http-enabled": "the kit: plain HTTP between the proxy and Keycloak",
        "http-host": kc.origin("http_host", "the target: address Keycloak listens on"),
        "http-port": kc.origin("http_port", "the target: port the proxy forwards to"),
        "http-management-port": kc.origin(
            "management_port", "the target: health and metrics, never proxied"
        ),
        "proxy-trusted-addresses": kc.origin(
            "proxy_trusted_addresses", "the target: addresses of the TLS proxy"
        ),
        "cache": (
            f"spec deployment: {kc.replicas} replicas share sessions through Infinispan"
            if kc.clustered
            else "spec deployment: one replica, no cluster"
        ),
        "cache-stack": "the kit: peers found through the shared database",
        "db-url-host": database,
        "db-url-port": database,
        "db-url-database": database,
        "db-url-properties": database,
        "db-username": (
            f"{database}; its password comes from KC_DB_PASSWORD (secret {db.password.name})"
        ),
        "truststore-paths": kc.origin("truststore_paths", "the target: extra CAs to trust"),
        "vault": "the target: realms read the state's secrets from files, ${vault.<name>}",
        "vault-dir": kc.origin("vault_dir", "the target: where it writes <realm>_<name> files"),
        "log": "the kit: logs go to the console (journald, the container runtime)",
        "log-console-output": kc.origin("log_format", "the target's log collector"),
        "log-level": kc.origin("log_level", "the kit's default"),
    }
    return {name: notes[name] for name in options(kc)}


def render_conf(options: Mapping[str, str], source_notes: Mapping[str, str]) -> str:
    """A ``keycloak.conf``: each option preceded by a comment saying where it came from.

    Comments sit on their own line: keycloak.conf is a properties file, where a ``#`` after
    a value would become part of the value.
    """
    secret = sorted(set(options) & SECRET_OPTIONS)
    if secret:
        raise KeycloakRuntimeError(
            f"keycloak.conf must not hold secrets ({', '.join(secret)}); pass them through "
            f"the environment ({', '.join(SECRET_ENV_VARS)})"
        )
    unexplained = sorted(set(options) - set(source_notes))
    if unexplained:
        raise KeycloakRuntimeError(
            f"keycloak.conf options without a source note: {', '.join(unexplained)}"
        )
    lines = [
        "# Rendered by the Karmayogi kit; edits are overwritten at the next render.",
        "# Secrets are not here: Keycloak reads them from the environment "
        f"({', '.join(SECRET_ENV_VARS)}).",
        "",
    ]
    for name, value in options.items():
        note = " ".join(source_notes[name].split())
        lines += [f"# {note}", f"{name}={_escape(value)}"]
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    """A properties-file value: backslashes doubled, line breaks refused."""
    if "\n" in value or "\r" in value:
        raise KeycloakRuntimeError(f"a keycloak.conf value cannot span lines: {value!r}")
    return value.replace("\\", "\\\\")


# --- environment -----------------------------------------------------------------------------


def secret_env(kc: ProductionKeycloak) -> dict[str, SecretRef]:
    """Each secret-carrying environment variable and the secret the target fills it from."""
    return {
        "KC_DB_PASSWORD": kc.database.password,
        BOOTSTRAP_CLIENT_SECRET_ENV: kc.bootstrap_secret,
    }


def plain_env(kc: ProductionKeycloak) -> dict[str, str]:
    """Environment variables without a secret: the heap cap and the bootstrap client's id.

    ``KC_BOOTSTRAP_ADMIN_*`` only matter on the first start on an empty database (Keycloak
    makes the bootstrap client when it creates the master realm); they are harmless later.
    """
    return {
        "JAVA_OPTS_KC_HEAP": f"-Xms{HEAP_FLOOR} -Xmx{kc.heap}",
        BOOTSTRAP_CLIENT_ID_ENV: kc.bootstrap_client_id,
    }


def bootstrap_env(client_id: str, client_secret: str) -> dict[str, str]:
    """The environment of a first start: a temporary service-account client (not a user
    signing in with a password) that :func:`infra.keycloak.accounts.bootstrap_operator_accounts`
    replaces."""
    return {BOOTSTRAP_CLIENT_ID_ENV: client_id, BOOTSTRAP_CLIENT_SECRET_ENV: client_secret}


def build_command(dist: str) -> list[str]:
    """``kc.sh build``: reads the build-time options from ``conf/keycloak.conf``."""
    return [f"{dist}/bin/kc.sh", "build"]


def start_command(dist: str) -> list[str]:
    """``kc.sh start --optimized``: runs what ``build`` fixed, with the runtime options."""
    return [f"{dist}/bin/kc.sh", "start", "--optimized"]
