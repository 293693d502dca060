"""The one target-neutral pass: specs + a placement + a secret store → ``RenderedTenant``s.

Every target turns the same frozen objects into its own artefacts: the local target into
processes and an env file, the vm target into Ansible variables, and so on. Render reads no
files and probes no ports; what it needs of the world comes in through ``Placement`` and
``SecretStore`` (``infra/render/inputs.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from identity.desired import (
    DEMO_ROLE,
    Department,
    ExternalProvider,
    Federation,
    MailServer,
    PortalClient,
    ProviderMapper,
    RemoteHub,
    TenantRealm,
    VaultSecret,
    vault_expression,
)
from identity.themes import LoginTheme, theme_name
from infra.render.colors import accessible_palette
from infra.render.inputs import (
    BROKER_CLIENT_SECRET,
    DATABASE_URL,
    DJANGO_SECRET_KEY,
    FEDERATION_CLIENT_SECRET,
    PORTAL_CLIENT_SECRET,
    HubLink,
    Placement,
    Secret,
    SecretStore,
    map_secrets,
)
from infra.render.sizes import SIZES, Size
from infra.spec import TenantSpec
from infra.spec.languages import LANGUAGES
from infra.spec.model import Provider, SecretRef

PortalSettings = Mapping[str, "str | int | bool | list[Any] | dict[str, Any] | Secret"]


@dataclass(frozen=True)
class RenderedTenant:
    """Everything the targets need to know of one tenant, decided once."""

    spec: TenantSpec
    portal_url: str
    issuer: str  # the realm's issuer, https://<loginDomain>/realms/<code> in production
    realm: TenantRealm
    theme: LoginTheme
    size: Size
    # The portal's settings in the decoded form of its contract
    # (tenant_portal/settings/portal-settings.schema.json); secrets stay ``Secret``s.
    portal: PortalSettings
    hub_link: HubLink | None = None  # the remote hub whose credentials the tenant accepted

    @property
    def code(self) -> str:
        return self.spec.code


def login_theme(spec: TenantSpec, logo: bytes) -> LoginTheme:
    """The tenant's Keycloak login theme; ``logo`` is the file's bytes, read by the caller."""
    colors = spec.spec.branding.colors
    palette = accessible_palette(colors.primary, colors.accent)
    return LoginTheme(
        name=theme_name(spec.code),
        display_name=spec.spec.branding.display_name,
        logo=logo,
        logo_suffix=spec.logo_path.suffix.lower(),
        primary=palette.primary,
        accent=palette.accent,
        on_primary=palette.on_primary,
        languages=tuple(spec.spec.languages),
    )


def portal_client(portal_url: str, secret: str) -> PortalClient:
    """The portal's OIDC client as the portal's routes expect it."""
    return PortalClient(
        base_url=portal_url,
        redirect_uris=(f"{portal_url}/auth/callback/",),
        post_logout_redirect_uris=(f"{portal_url}/",),
        backchannel_logout_url=f"{portal_url}/auth/backchannel-logout/",
        secret=secret,
    )


def _value_or_empty(secret: Secret) -> str:
    # A store that only knows references (production targets at render time) leaves the
    # realm's client secrets empty; such a realm is never applied from this render.
    return secret.value or ""


def external_provider(provider: Provider) -> ExternalProvider:
    """The spec's provider as the reconciler takes it: secrets as vault expressions."""
    return ExternalProvider(
        alias=provider.alias,
        kind=provider.type,
        display_name=provider.display_name,
        config={
            key: vault_expression(value.secret) if isinstance(value, SecretRef) else value
            for key, value in provider.config.items()
        },
        mappers=tuple(
            ProviderMapper(m.source, m.value, m.department, m.role, m.attribute)
            for m in provider.mappers
        ),
        exclusive=provider.exclusive,
        link_by_email=provider.link_by_email,
        sync_period=provider.sync_period,
    )


def secret_references(spec: TenantSpec) -> list[tuple[Path, str, SecretRef]]:
    """Every secret the spec names, with the file and field that name it (the mail password
    may come from the deployment's defaults beside the spec)."""
    identity = spec.spec.identity
    found = [
        (spec.source, f"spec.identity.providers[{index}].config.{key}", value)
        for index, provider in enumerate(identity.providers)
        for key, value in provider.config.items()
        if isinstance(value, SecretRef)
    ]
    mail = spec.mail
    if mail is not None and isinstance(mail.password, SecretRef):
        file, field = spec.mail_origin
        found.append((file, f"{field}.password", mail.password))
    return found


def vault_secrets(spec: TenantSpec, secrets: SecretStore) -> tuple[VaultSecret, ...]:
    """The secrets the spec names, with their values when the store holds them."""
    names = dict.fromkeys(ref.secret for _, _, ref in secret_references(spec))
    return tuple(VaultSecret(name, secrets.secret(spec.code, name).value) for name in names)


def mail_server(spec: TenantSpec) -> MailServer | None:
    """The realm's SMTP server, its own or the deployment's; the sender's name is the
    tenant's unless its own mail names another."""
    mail = spec.mail
    if mail is None:
        return None
    return MailServer(
        host=mail.host,
        port=mail.port,
        from_address=mail.from_address,
        from_name=mail.from_name or spec.spec.branding.display_name,
        security=mail.security,
        reply_to=mail.reply_to,
        user=mail.user,
        password=(
            vault_expression(mail.password.secret) if isinstance(mail.password, SecretRef) else None
        ),
    )


def tenant_realm(
    spec: TenantSpec, placement: Placement, secrets: SecretStore, *, demo: bool
) -> TenantRealm:
    """The realm Keycloak should hold for ``spec``."""
    identity = spec.spec.identity
    portal_url = placement.portal_url(spec.code)
    return TenantRealm(
        code=spec.code,
        display_name=spec.spec.branding.display_name,
        languages=tuple(spec.spec.languages),
        departments=tuple(Department(d.code, d.name) for d in identity.departments),
        portal=portal_client(
            portal_url, _value_or_empty(secrets.secret(spec.code, PORTAL_CLIENT_SECRET))
        ),
        broker_to_hub=identity.broker_to_hub,
        admin_otp_required=identity.admin_otp == "required",
        # Only the embedded default's demo administrators sign in without OTP.
        otp_exempt_role=DEMO_ROLE if demo else None,
        login_theme=theme_name(spec.code),
        keys_url=f"{portal_url}/federation/v1/keys",
        broker_secret=_value_or_empty(secrets.secret(spec.code, BROKER_CLIENT_SECRET)),
        federation_secret=_value_or_empty(secrets.secret(spec.code, FEDERATION_CLIENT_SECRET)),
        providers=tuple(external_provider(p) for p in identity.providers),
        vault=vault_secrets(spec, secrets),
        mail=mail_server(spec),
    )


def federation_settings(
    spec: TenantSpec,
    specs: Sequence[TenantSpec],
    placement: Placement,
    secret: Secret,
    link: HubLink | None = None,
) -> dict[str, Any]:
    """What the portal's federation needs: its token client in the hub realm, the peers it
    pulls (a tenant: the hub; the hub: every tenant that publishes), every instance's display
    name, the hub portal's URL (where xAPI statements go, and whose signed member directory
    gives each origin's keys URL), the tenant's subscription, and on the hub its members: the
    other tenants of the spec folder, with the keys URL the reconciler also registers on
    their ``federation-<code>`` clients."""
    hub = next((s for s in specs if s.is_hub), None)
    if hub is None or (not spec.is_hub and spec.hub_code != hub.code):
        return remote_federation_settings(spec, secret, link)
    if spec.is_hub:
        peers = [s for s in specs if not s.is_hub and s.spec.federation.publish]
    else:
        peers = [hub] if spec.hub_code == hub.code else []
    return {
        "code": spec.code,
        "isHub": spec.is_hub,
        "hub": hub.code,
        "hubIssuer": f"{placement.keycloak_url(hub.code)}/realms/{hub.code}",
        "hubUrl": placement.portal_url(hub.code),
        "clientId": f"federation-{spec.code}",
        "clientSecret": secret,
        "publish": spec.is_hub or spec.spec.federation.publish,
        "peers": [{"code": p.code, "url": placement.portal_url(p.code)} for p in peers],
        "members": [
            {
                "code": s.code,
                "name": s.spec.branding.display_name,
                "tenantType": s.metadata.type,
                "portalUrl": placement.portal_url(s.code),
                "keysUrl": f"{placement.portal_url(s.code)}/federation/v1/keys",
                "publish": s.spec.federation.publish,
            }
            for s in specs
            if spec.is_hub and not s.is_hub
        ],
        "names": {s.code: s.spec.branding.display_name for s in specs},
        "subscribe": None if spec.is_hub else _subscription(spec),
    }


def _subscription(spec: TenantSpec) -> dict[str, Any]:
    subscribe = spec.spec.federation.subscribe
    return {
        "languages": list(subscribe.languages),
        "competencyAreas": list(subscribe.competency_areas),
        "linkOnly": list(subscribe.link_only),
    }


def remote_federation_settings(
    spec: TenantSpec, secret: Secret, link: HubLink | None
) -> dict[str, Any]:
    """A tenant whose hub runs in another deployment (its spec names it ``{code, url}``).

    Until the tenant has accepted the hub's credentials (``link``), the portal knows where the
    hub is but has no client there, so it pulls nothing and delivers nothing; afterwards it
    takes tokens from the hub's realm and pulls the hub's feed, like a tenant beside its hub.
    """
    if spec.hub_code is None or spec.hub_url is None:
        return {"code": spec.code, "isHub": False, "peers": []}
    settings: dict[str, Any] = {
        "code": spec.code,
        "isHub": False,
        "hub": spec.hub_code,
        "hubUrl": spec.hub_url.rstrip("/"),
        "publish": spec.spec.federation.publish,
        "peers": [],
        "names": {spec.code: spec.spec.branding.display_name},
        "subscribe": _subscription(spec),
    }
    if link is not None:
        settings |= {
            "hubIssuer": link.issuer,
            "clientId": f"federation-{spec.code}",
            "clientSecret": secret,
            "peers": [{"code": link.code, "url": settings["hubUrl"]}],
            "names": {spec.code: spec.spec.branding.display_name, link.code: link.name},
        }
    return settings


def portal_settings(
    spec: TenantSpec,
    specs: Sequence[TenantSpec],
    placement: Placement,
    secrets: SecretStore,
    link: HubLink | None = None,
) -> dict[str, Any]:
    """The portal's settings, decoded, as its contract names them."""
    runtime = placement.portal_runtime(spec.code)
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
    hub_name = hub.spec.branding.display_name if brokered and hub else ""
    if link is not None and spec.spec.identity.broker_to_hub:
        brokered, hub_name = True, link.name
    portal_url = placement.portal_url(spec.code)
    settings: dict[str, Any] = {
        "DJANGO_SETTINGS_MODULE": runtime.settings_module,
        "KARMAYOGI_TENANT": spec.code,
        "KARMAYOGI_TENANT_TYPE": spec.metadata.type,
        "KARMAYOGI_SITE_NAME": branding.display_name,
        "KARMAYOGI_PROVIDER_NAME": dict(branding.provider),
        "KARMAYOGI_DOMAIN": spec.spec.domain,
        "KARMAYOGI_PORTAL_URL": portal_url,
        "KARMAYOGI_DATA_DIR": runtime.data_dir,
        "KARMAYOGI_STATIC_ROOT": runtime.static_root,
        "KARMAYOGI_LANGUAGES": languages,
        "KARMAYOGI_DEPARTMENTS": {d.code: d.name for d in spec.spec.identity.departments},
        "KARMAYOGI_LOGO": runtime.logo_path or str(spec.logo_path),
        "KARMAYOGI_PRIMARY": palette.primary,
        "KARMAYOGI_ON_PRIMARY": palette.on_primary,
        "KARMAYOGI_ACCENT": palette.accent,
        "KARMAYOGI_ON_ACCENT": palette.on_accent,
        "KARMAYOGI_LINK": palette.link,
        "KARMAYOGI_OIDC_ISSUER": f"{placement.keycloak_url(spec.code)}/realms/{spec.code}",
        "KARMAYOGI_OIDC_CLIENT_ID": "portal",
        "KARMAYOGI_OIDC_CLIENT_SECRET": secrets.secret(spec.code, PORTAL_CLIENT_SECRET),
        "KARMAYOGI_HUB_IDP": (spec.hub_code or "") if brokered else "",
        "KARMAYOGI_HUB_NAME": hub_name,
        "KARMAYOGI_FEDERATION": federation_settings(
            spec, specs, placement, secrets.secret(spec.code, FEDERATION_CLIENT_SECRET), link
        ),
        "DJANGO_ALLOWED_HOSTS": ",".join(runtime.allowed_hosts),
    }
    if runtime.media_root:
        settings["KARMAYOGI_MEDIA_ROOT"] = runtime.media_root
    if runtime.settings_module.endswith(".production"):
        settings["DATABASE_URL"] = secrets.secret(spec.code, DATABASE_URL)
        settings["DJANGO_SECRET_KEY"] = secrets.secret(spec.code, DJANGO_SECRET_KEY)
    else:
        # The embedded default: SQLite beside the portal's data, a secret key made there.
        settings["DATABASE_URL"] = f"sqlite:///{runtime.data_dir}/portal.sqlite3"
    return settings


def render_tenants(
    specs: Sequence[TenantSpec],
    placement: Placement,
    secrets: SecretStore,
    logos: Mapping[str, bytes],
    *,
    demo: bool = False,
    hub_links: Mapping[str, HubLink] | None = None,
) -> tuple[RenderedTenant, ...]:
    """Render every spec of one federation; ``logos`` holds each tenant's logo file, and
    ``hub_links`` the remote hub each tenant has accepted credentials from (by its code)."""
    links = hub_links or {}
    return tuple(
        RenderedTenant(
            spec=spec,
            portal_url=placement.portal_url(spec.code),
            issuer=f"{placement.keycloak_url(spec.code)}/realms/{spec.code}",
            realm=tenant_realm(spec, placement, secrets, demo=demo),
            theme=login_theme(spec, logos[spec.code]),
            size=SIZES[spec.spec.deployment.size],
            portal=MappingProxyType(
                portal_settings(spec, specs, placement, secrets, links.get(spec.code))
            ),
            hub_link=links.get(spec.code),
        )
        for spec in specs
    )


def federation_of(rendered: Sequence[RenderedTenant], keycloak_url: str) -> Federation:
    """The reconciler's input: every rendered realm on the Keycloak at ``keycloak_url``, and
    the hub they broker to: a realm among them, or one in another deployment."""
    tenants = tuple(r.realm for r in rendered)
    hub = next((r.realm for r in rendered if r.spec.is_hub), None)
    links = {r.hub_link for r in rendered if r.hub_link is not None}
    if len(links) > 1:
        codes = ", ".join(sorted(link.code for link in links))
        raise ValueError(f"one deployment federates with one hub, not several ({codes})")
    link = next(iter(links), None)
    remote = RemoteHub(link.code, link.name, link.issuer) if link and hub is None else None
    return Federation(server_url=keycloak_url, tenants=tenants, hub=hub, remote_hub=remote)


def _value_of(secret: Secret) -> str:
    if secret.value is None:
        raise ValueError(f"secret {secret.name} is kept at {secret.reference}, not here")
    return secret.value


def reveal(settings: PortalSettings) -> dict[str, Any]:
    """The settings with every secret replaced by its value (for a process's environment)."""
    revealed: dict[str, Any] = map_secrets(dict(settings), _value_of)
    return revealed


def references(settings: PortalSettings) -> dict[str, Any]:
    """The settings with every secret replaced by its reference: safe to write anywhere."""
    referred: dict[str, Any] = map_secrets(dict(settings), lambda s: {"secretRef": s.reference})
    return referred


def as_environment(settings: Mapping[str, Any]) -> dict[str, str]:
    """The contract's transport: strings stay, everything else is JSON-encoded."""
    return {
        key: value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        for key, value in settings.items()
    }
