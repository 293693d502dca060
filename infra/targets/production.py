"""What the production targets (vm, kubernetes, aws) render alike.

Every production target places the portal at ``https://<domain>`` and the deployment's one
Keycloak at ``https://<loginDomain>``, runs the portal with its production settings on
PostgreSQL, and runs Keycloak built for production with every tenant's login theme in one
JAR. What differs between them — where data lives on disk, where secrets are kept, how the
files are used — each target says in its own package.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from identity.themes import theme_jar
from infra.errors import KitError
from infra.keycloak import production as keycloak
from infra.render.inputs import BROKER_CLIENT_SECRET, PortalRuntime, Secret, secrets_in
from infra.render.portal import validate_portal_settings
from infra.render.sizes import SIZES, largest
from infra.render.tenant import RenderedTenant, references, render_tenants
from infra.spec import TenantSpec
from infra.targets.base import Manifest, Progress, SecretReference

THEMES_JAR = "karmayogi-themes.jar"
# Secrets of a deployment's Keycloak, named in the manifest like a tenant's.
KEYCLOAK_DB_PASSWORD = "keycloak_db_password"
KEYCLOAK_BOOTSTRAP_SECRET = "keycloak_bootstrap_client_secret"


@dataclass(frozen=True)
class KeycloakSite:
    """Where a target runs a deployment's Keycloak: its database and how it is reached."""

    database_host: str
    database_name: str = "keycloak"
    database_user: str = "keycloak"
    # The address the TLS proxy (nginx, an ingress) connects from; X-Forwarded-* from any
    # other address is ignored.
    proxy_addresses: tuple[str, ...] = ("127.0.0.1",)
    http_host: str = "127.0.0.1"
    # Where the target writes the realms' vault files, when it does (None: it does not yet).
    vault_dir: str | None = None
    # Files or folders of CAs Keycloak trusts as a client (the providers' CAs).
    truststore_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostnamePlacement:
    """Portals at their spec's domain, realms on their deployment's loginDomain, over HTTPS."""

    specs: Sequence[TenantSpec]
    data_root: str  # where each portal's folder lives on the target's hosts or volumes

    def _spec(self, code: str) -> TenantSpec:
        found = next((s for s in self.specs if s.code == code), None)
        if found is None:
            raise KitError(f"no tenant spec with code {code!r}")
        return found

    def portal_url(self, code: str) -> str:
        return f"https://{self._spec(code).spec.domain}"

    def keycloak_url(self, code: str) -> str:
        return f"https://{self._spec(code).login_domain}"

    def portal_runtime(self, code: str) -> PortalRuntime:
        spec = self._spec(code)
        data_dir = f"{self.data_root}/{code}"
        return PortalRuntime(
            settings_module="tenant_portal.settings.production",
            data_dir=data_dir,
            static_root=f"{data_dir}/static",
            media_root=f"{data_dir}/media",
            logo_path=f"{data_dir}/branding/logo{spec.logo_path.suffix.lower()}",
            allowed_hosts=(spec.spec.domain,),
        )


@dataclass(frozen=True)
class ReferenceSecretStore:
    """A store render sees only by name: the target's vault holds the values."""

    reference_of: Callable[[str, str], str]

    def secret(self, code: str, name: str) -> Secret:
        return Secret(name, self.reference_of(code, name))


def keycloak_for(
    deployment: Sequence[RenderedTenant], site: KeycloakSite, store: ReferenceSecretStore
) -> keycloak.ProductionKeycloak:
    """The production Keycloak the tenants of one deployment share."""
    first = deployment[0]
    name = first.spec.deployment_name
    size_name = largest([t.spec.spec.deployment.size for t in deployment])
    size = SIZES[size_name]
    return keycloak.ProductionKeycloak(
        hostname=f"https://{first.spec.login_domain}",
        database=keycloak.Database(
            host=site.database_host,
            name=site.database_name,
            username=site.database_user,
            password=keycloak.SecretRef(store.secret(name, KEYCLOAK_DB_PASSWORD).reference),
        ),
        bootstrap_secret=keycloak.SecretRef(
            store.secret(name, KEYCLOAK_BOOTSTRAP_SECRET).reference
        ),
        replicas=size.keycloak_replicas,
        heap=size.keycloak_heap,
        http_host=site.http_host,
        proxy_trusted_addresses=site.proxy_addresses,
        vault_dir=site.vault_dir,
        truststore_paths=site.truststore_paths,
        origins={
            "hostname": f"spec identity.loginDomain of deployment {name!r}",
            "replicas": f"deployment.size {size_name}: the largest in deployment {name!r}",
        },
    )


def render_production(
    target: str,
    specs: Sequence[TenantSpec],
    codes: Sequence[str],
    out: Path,
    *,
    data_root: str,
    reference_of: Callable[[str, str], str],
    site: KeycloakSite,
) -> tuple[Manifest, tuple[RenderedTenant, ...]]:
    """Write the inputs every production target shares for ``codes`` into ``out``:
    each portal's settings (secrets as references) and logo, and the deployment's Keycloak:
    its ``keycloak.conf`` and the login-theme JAR of every tenant it serves. Targets add
    their own files and save the manifest."""
    placement = HostnamePlacement(specs, data_root)
    store = ReferenceSecretStore(reference_of)
    logos = {spec.code: spec.logo_path.read_bytes() for spec in specs}
    everyone = render_tenants(specs, placement, store, logos)
    rendered = tuple(r for r in everyone if r.code in codes)
    deployments = {r.spec.deployment_name for r in rendered}
    if len(deployments) != 1:
        raise KitError(
            f"{', '.join(codes)} belong to deployments {', '.join(sorted(deployments))}: "
            "render one deployment at a time"
        )
    # One Keycloak serves the whole deployment: its themes are every member's, not only
    # the tenants rendered now.
    deployment = [r for r in everyone if r.spec.deployment_name in deployments]
    manifest = Manifest(target, list(codes))
    secrets: dict[str, SecretReference] = {}
    for tenant in rendered:
        validate_portal_settings(tenant.portal, source=f"the rendered settings of {tenant.code}")
        settings = references(tenant.portal)
        manifest.write_file(
            out,
            f"portal/{tenant.code}/settings.json",
            json.dumps(settings, indent=2, ensure_ascii=False) + "\n",
            f"{tenant.code}'s portal settings (the portal's contract, "
            "tenant_portal/settings/portal-settings.schema.json); secrets as {secretRef}",
        )
        manifest.write_file(
            out,
            f"portal/{tenant.code}/logo{tenant.spec.logo_path.suffix.lower()}",
            logos[tenant.code],
            f"{tenant.code}'s logo, at KARMAYOGI_LOGO on the portal's hosts",
        )
        # The portal's secrets, and the broker client's, which only the realms hold.
        broker = store.secret(tenant.code, BROKER_CLIENT_SECRET)
        for secret in [*secrets_in(dict(tenant.portal)), broker]:
            secrets.setdefault(
                secret.reference, SecretReference(secret.name, secret.reference, tenant.code)
            )
    manifest.write_file(
        out,
        f"keycloak/providers/{THEMES_JAR}",
        theme_jar([t.theme for t in deployment]),
        "every tenant's login theme, for Keycloak's providers/ folder (registered by kc.sh build)",
    )
    kc = keycloak_for(deployment, site, store)
    manifest.write_file(
        out,
        "keycloak/conf/keycloak.conf",
        keycloak.render_conf(keycloak.options(kc), keycloak.source_notes(kc)),
        "Keycloak's build and run-time options (kc.sh build, then start --optimized)",
    )
    for variable, ref in keycloak.secret_env(kc).items():
        reference = SecretReference(variable, ref.name, "keycloak")
        secrets.setdefault(ref.name, reference)
    manifest.secrets.extend(secrets.values())
    return manifest, rendered


class NotDeployableYet(KitError):
    """The target renders its inputs; deploying through the kit comes with its own issue."""


@dataclass
class ProductionTarget:
    """Render for a production target; its deploy, status, logs and remove say how to go on."""

    name: str
    data_root: str
    tool: str  # what deploys the rendered files, named in the error of deploy
    env: dict[str, str]
    site: KeycloakSite

    def reference_of(self, code: str, name: str) -> str:
        raise NotImplementedError

    def render_common(
        self, specs: Sequence[TenantSpec], codes: Sequence[str], out: Path
    ) -> tuple[Manifest, tuple[RenderedTenant, ...]]:
        """What every production target renders alike (:func:`render_production`), not saved
        yet: a target adds its own files to the manifest, then saves it."""
        return render_production(
            self.name,
            specs,
            codes,
            out,
            data_root=self.data_root,
            reference_of=self.reference_of,
            site=self.site,
        )

    def render(self, specs: Sequence[TenantSpec], codes: Sequence[str], out: Path) -> Manifest:
        manifest, _ = self.render_common(specs, codes, out)
        manifest.save(out)
        return manifest

    def _not_yet(self) -> NotDeployableYet:
        return NotDeployableYet(
            f"the {self.name} target renders its inputs (`karmayogi render CODE --target "
            f"{self.name} --out DIR`); deploying them is done with {self.tool}, which the kit "
            "does not drive yet"
        )

    def deploy(self, specs: Sequence[TenantSpec], codes: Sequence[str], progress: Progress) -> Any:
        raise self._not_yet()

    def status(self, specs: Sequence[TenantSpec]) -> dict[str, Any]:
        raise self._not_yet()

    def logs(self, name: str) -> Path:
        raise self._not_yet()

    def remove(
        self, code: str, specs: Sequence[TenantSpec], tenants: Path, progress: Progress
    ) -> Any:
        raise self._not_yet()

    def membership(self, specs: Sequence[TenantSpec]) -> Any:
        raise self._not_yet()
