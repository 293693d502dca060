"""Desired Keycloak state for a federation, computed from typed inputs only.

Every managed object is a :class:`Resource`: a kind, the realm it lives in, a name, the
tenant that owns it, and the representation fields the kit manages. Fields the kit does not
name are left to the operator; fields it names are put back when they drift.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ROLES: Mapping[str, str] = {
    "learner": "Takes courses; every user has it by default",
    "content_creator": "Drafts courses in the portal (Wagtail Editors)",
    "content_reviewer": "Reviews drafts before publication (Wagtail Moderators)",
    "content_publisher": "Publishes reviewed courses (Wagtail Publishers)",
    "mdo_admin": "Sees enrolment and completion reports of their department",
    "tenant_admin": "Administers this tenant's portal; signs in with OTP",
}
DEFAULT_ROLE = "learner"
ADMIN_ROLE = "tenant_admin"
REALM_MANAGEMENT = "realm-management"
ADMIN_CLI = "admin-cli"
# What ``tenant_admin`` may do in the realm's admin console (/admin/<code>/console/), as
# composites of Keycloak's ``realm-management`` client roles: people (create, edit, reset
# passwords, groups, role mappings) and a read-only view of the realm and its sign-in events.
# Not the realm's clients, flows or identity providers: those stay with the kit.
ADMIN_RIGHTS = (
    "manage-users",
    "view-users",
    "query-users",
    "query-groups",
    "view-realm",
    "view-events",
)
# Held only by the local target's demo administrators: exempts them from OTP (never rendered
# for a production target; see docs/identity.md).
DEMO_ROLE = "karmayogi_demo"
DEPARTMENTS_GROUP = "departments"
PORTAL_CLIENT = "portal"
BROWSER_FLOW = "karmayogi-browser"
POST_BROKER_FLOW = "karmayogi-post-broker"
FIRST_BROKER_FLOW = "karmayogi-first-broker"
# Keycloak's own first-login flow for brokered users: review the profile, then create the
# account or, when one has the same e-mail, ask the user to prove they own it.
DEFAULT_FIRST_BROKER_FLOW = "first broker login"
# The officer's post (designation): a user attribute only administrators and the identity
# providers' mappers write; the portal client's "post" mapper passes it to the portal, which
# matches it to a post (competencies.Post) by code or by name.
POST_ATTRIBUTE = "post"
# User attributes a provider's mapper may fill: the post, and the profile's own fields.
MAPPABLE_ATTRIBUTES = (POST_ATTRIBUTE, "email", "firstName", "lastName")
KEYS_URL_ATTRIBUTE = "karmayogi.federation.keys_url"
# A password policy in the spirit of NIST SP 800-63B: length first, no username reuse.
PASSWORD_POLICY = (
    "length(12) and notUsername and notEmail and passwordHistory(3) and maxLength(128)"
)
EVENTS_EXPIRATION_SECONDS = 90 * 24 * 3600


@dataclass(frozen=True)
class Department:
    code: str
    name: str


@dataclass(frozen=True)
class PortalClient:
    """Where a tenant's portal runs, as its target's rendered config says."""

    base_url: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    backchannel_logout_url: str
    secret: str


@dataclass(frozen=True)
class ProviderMapper:
    """What a sign-in through an external provider sets on the user.

    ``source`` is an OIDC claim, a SAML attribute or an LDAP attribute; ``value`` is the
    value that selects a department or a role (not used for attributes). Exactly one of
    ``department``, ``role`` and ``attribute`` is set.
    """

    source: str
    value: str | None = None
    department: str | None = None
    role: str | None = None
    attribute: str | None = None

    @property
    def name(self) -> str:
        if self.department is not None:
            return f"department {self.department} from {self.source}={self.value}"
        if self.role is not None:
            return f"role {self.role} from {self.source}={self.value}"
        return f"attribute {self.attribute} from {self.source}"


@dataclass(frozen=True)
class ExternalProvider:
    """An identity provider or user directory the state already runs.

    ``config`` holds Keycloak's own settings of the provider by their Keycloak names; a secret
    in it is only ever a vault expression, ``${vault.<name>}`` (see :class:`VaultSecret`).
    """

    alias: str
    kind: Literal["oidc", "saml", "ldap"]
    display_name: str
    config: Mapping[str, str] = field(default_factory=dict)
    mappers: tuple[ProviderMapper, ...] = ()
    # Sign in only through this provider: the login page sends users straight to it.
    exclusive: bool = False
    # Link a first sign-in to the account that has the same e-mail, which the provider is
    # trusted to have verified; otherwise Keycloak asks the user to prove the account is theirs.
    link_by_email: bool = False
    # LDAP: seconds between syncs of the users changed in the directory (None: hourly).
    sync_period: int | None = None


@dataclass(frozen=True)
class VaultSecret:
    """A secret the realm reads through Keycloak's vault as ``${vault.<name>}``.

    ``value`` is None when the target's store only names it (production targets put it into
    Keycloak's vault themselves); the reconciler then leaves the vault alone.
    """

    name: str
    value: str | None = field(default=None, repr=False, compare=False)

    @property
    def expression(self) -> str:
        return vault_expression(self.name)


def vault_expression(name: str) -> str:
    """How a realm's setting names a secret kept in Keycloak's vault."""
    return "${vault." + name + "}"


@dataclass(frozen=True)
class MailServer:
    """The realm's SMTP server; ``password`` is a vault expression, never the secret."""

    host: str
    port: int
    from_address: str
    from_name: str
    security: Literal["starttls", "ssl", "none"] = "starttls"
    reply_to: str | None = None
    user: str | None = None
    password: str | None = None

    def settings(self) -> dict[str, str]:
        """Keycloak's ``smtpServer`` map (every value a string)."""
        settings = {
            "host": self.host,
            "port": str(self.port),
            "from": self.from_address,
            "fromDisplayName": self.from_name,
            "ssl": str(self.security == "ssl").lower(),
            "starttls": str(self.security == "starttls").lower(),
            "auth": str(self.user is not None).lower(),
        }
        if self.reply_to:
            settings["replyTo"] = self.reply_to
        if self.user is not None:
            settings["user"] = self.user
        if self.password is not None:
            settings["password"] = self.password
        return settings


@dataclass(frozen=True)
class TenantRealm:
    """Everything the reconciler needs to know about one tenant."""

    code: str
    display_name: str
    languages: tuple[str, ...]
    departments: tuple[Department, ...]
    portal: PortalClient
    broker_to_hub: bool = False
    admin_otp_required: bool = True
    # A role whose holders skip the admin OTP step; only the local target's demo sets it.
    otp_exempt_role: str | None = None
    login_theme: str | None = None
    keys_url: str | None = None
    broker_secret: str = ""
    federation_secret: str = ""
    providers: tuple[ExternalProvider, ...] = ()
    vault: tuple[VaultSecret, ...] = ()
    mail: MailServer | None = None

    @property
    def exclusive_provider(self) -> str | None:
        return next((p.alias for p in self.providers if p.exclusive), None)


@dataclass(frozen=True)
class RemoteHub:
    """A hub realm on another deployment's Keycloak, which a tenant here brokers to.

    ``issuer`` is that realm's issuer, ``https://<hub login domain>/realms/<code>``. Its
    ``broker-`` and ``federation-`` clients are made by the hub's operator when it admits the
    tenant (:mod:`infra.keycloak.membership`), never by this reconciler.
    """

    code: str
    display_name: str
    issuer: str

    def __post_init__(self) -> None:
        if not self.issuer.startswith(("https://", "http://")) or not self.issuer.endswith(
            f"/realms/{self.code}"
        ):
            raise ValueError(
                f"remote hub {self.code}: issuer {self.issuer!r} is not "
                f"<scheme>://<login domain>/realms/{self.code}"
            )


@dataclass(frozen=True)
class Federation:
    """The tenants to reconcile and the hub realm they federate through.

    ``hub`` is the hub realm on this Keycloak; ``remote_hub`` is one on another deployment's
    Keycloak (the tenants here then get only its identity provider). At most one is set;
    with neither, tenants broker to nobody.
    """

    server_url: str
    tenants: tuple[TenantRealm, ...]
    hub: TenantRealm | None = None
    remote_hub: RemoteHub | None = None

    def __post_init__(self) -> None:
        if self.hub is not None and self.remote_hub is not None:
            raise ValueError(
                f"a federation has one hub: {self.hub.code} on this Keycloak or "
                f"{self.remote_hub.code} elsewhere, not both"
            )
        if self.remote_hub is not None and any(
            t.code == self.remote_hub.code for t in self.tenants
        ):
            raise ValueError(
                f"remote hub {self.remote_hub.code} has the code of a realm on this Keycloak"
            )


@dataclass(frozen=True)
class Resource:
    kind: str
    realm: str
    name: str
    tenant: str
    body: Mapping[str, Any] = field(default_factory=dict)
    # Fields whose values never appear in a plan, a log line or an error.
    secret_fields: tuple[str, ...] = ()
    # Fields Keycloak masks on read ("**********"): set on every write, never compared.
    write_only_fields: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.realm, self.name)

    def label(self) -> str:
        return (
            f"{self.kind} {self.realm}/{self.name}"
            if self.kind != "realm"
            else f"realm {self.realm}"
        )


# --- representations ---------------------------------------------------------------------


def realm_settings(tenant: TenantRealm) -> dict[str, Any]:
    """Realm fields the kit manages (security, events, languages, theme, flows)."""
    settings: dict[str, Any] = {
        "realm": tenant.code,
        "enabled": True,
        "displayName": tenant.display_name,
        "sslRequired": "external",
        "registrationAllowed": False,
        "loginWithEmailAllowed": True,
        "duplicateEmailsAllowed": False,
        "resetPasswordAllowed": True,
        "bruteForceProtected": True,
        "permanentLockout": False,
        "failureFactor": 5,
        "waitIncrementSeconds": 60,
        "maxFailureWaitSeconds": 900,
        "maxDeltaTimeSeconds": 43200,
        "passwordPolicy": PASSWORD_POLICY,
        "eventsEnabled": True,
        "eventsExpiration": EVENTS_EXPIRATION_SECONDS,
        "adminEventsEnabled": True,
        "adminEventsDetailsEnabled": True,
        "attributes": {"adminEventsExpiration": str(EVENTS_EXPIRATION_SECONDS)},
        "internationalizationEnabled": True,
        "supportedLocales": list(tenant.languages),
        "defaultLocale": tenant.languages[0],
    }
    if tenant.login_theme:
        settings["loginTheme"] = tenant.login_theme
        settings["emailTheme"] = tenant.login_theme
    if tenant.mail is not None:
        settings["smtpServer"] = tenant.mail.settings()
    return settings


def _confidential(*, sign_in: bool) -> dict[str, Any]:
    """A confidential OIDC client: users sign in through it, or it calls as itself."""
    return {
        "protocol": "openid-connect",
        "enabled": True,
        "publicClient": False,
        "clientAuthenticatorType": "client-secret",
        "standardFlowEnabled": sign_in,
        "implicitFlowEnabled": False,
        "directAccessGrantsEnabled": False,
        "serviceAccountsEnabled": not sign_in,
    }


def portal_client(tenant: TenantRealm) -> dict[str, Any]:
    portal = tenant.portal
    return {
        "clientId": PORTAL_CLIENT,
        "name": f"{tenant.display_name} portal",
        **_confidential(sign_in=True),
        "frontchannelLogout": False,
        "rootUrl": portal.base_url,
        "baseUrl": "/",
        "redirectUris": sorted(portal.redirect_uris),
        "webOrigins": ["+"],
        "attributes": {
            "pkce.code.challenge.method": "S256",
            "backchannel.logout.url": portal.backchannel_logout_url,
            "backchannel.logout.session.required": "true",
            "backchannel.logout.revoke.offline.tokens": "false",
            "post.logout.redirect.uris": "##".join(sorted(portal.post_logout_redirect_uris)),
        },
        "secret": portal.secret,
        "protocolMappers": [
            {
                "name": "audience portal",
                "protocol": "openid-connect",
                "protocolMapper": "oidc-audience-mapper",
                "config": {
                    "included.client.audience": PORTAL_CLIENT,
                    "access.token.claim": "true",
                    "id.token.claim": "false",
                    "introspection.token.claim": "true",
                },
            },
            {
                "name": "departments",
                "protocol": "openid-connect",
                "protocolMapper": "oidc-group-membership-mapper",
                "config": {
                    "claim.name": "groups",
                    "full.path": "true",
                    "access.token.claim": "true",
                    "id.token.claim": "true",
                    "userinfo.token.claim": "true",
                    "introspection.token.claim": "true",
                },
            },
            {
                # The officer's post (role-based learning): the portal reads it at sign-in and
                # at each session re-check, ahead of any other source of the post.
                "name": "post",
                "protocol": "openid-connect",
                "protocolMapper": "oidc-usermodel-attribute-mapper",
                "config": {
                    "user.attribute": POST_ATTRIBUTE,
                    "claim.name": "post",
                    "jsonType.label": "String",
                    "multivalued": "false",
                    "access.token.claim": "true",
                    "id.token.claim": "true",
                    "userinfo.token.claim": "true",
                    "introspection.token.claim": "true",
                },
            },
            {
                # The portal maps roles to Wagtail groups from the ID token and userinfo,
                # which the built-in realm_access claim (access token only) does not reach.
                "name": "realm roles",
                "protocol": "openid-connect",
                "protocolMapper": "oidc-usermodel-realm-role-mapper",
                "config": {
                    "claim.name": "roles",
                    "multivalued": "true",
                    "jsonType.label": "String",
                    "access.token.claim": "true",
                    "id.token.claim": "true",
                    "userinfo.token.claim": "true",
                    "introspection.token.claim": "true",
                },
            },
        ],
    }


def broker_client(code: str, display_name: str, redirect_uri: str, secret: str) -> dict[str, Any]:
    """The client in the hub realm that tenant ``code``'s identity provider signs in with.

    ``redirect_uri`` is the tenant realm's broker endpoint,
    ``<its keycloak>/realms/<code>/broker/<hub>/endpoint``.
    """
    return {
        "clientId": f"broker-{code}",
        "name": f"Sign-in for {display_name}",
        **_confidential(sign_in=True),
        "redirectUris": [redirect_uri],
        "webOrigins": [],
        "attributes": {"pkce.code.challenge.method": "S256"},
        "secret": secret,
    }


def broker_redirect_uri(server_url: str, code: str, hub: str) -> str:
    """Where the hub sends a user back to tenant ``code``'s realm after signing in."""
    return f"{server_url}/realms/{code}/broker/{hub}/endpoint"


def federation_client(
    code: str, display_name: str, keys_url: str | None, secret: str
) -> dict[str, Any]:
    """The service-account client an instance calls its peers with (DESIGN §6)."""
    attributes = {"client.use.lightweight.access.token.enabled": "false"}
    if keys_url:
        attributes[KEYS_URL_ATTRIBUTE] = keys_url
    return {
        "clientId": f"federation-{code}",
        "name": f"Federation calls of {display_name}",
        **_confidential(sign_in=False),
        "attributes": attributes,
        "secret": secret,
    }


def hub_identity_provider(
    tenant: TenantRealm, *, alias: str, display_name: str, issuer: str
) -> dict[str, Any]:
    """The tenant realm's OIDC identity provider for the hub realm at ``issuer``."""
    endpoints = f"{issuer}/protocol/openid-connect"
    return {
        "alias": alias,
        "displayName": display_name,
        "providerId": "oidc",
        "enabled": True,
        "trustEmail": True,
        "storeToken": False,
        "linkOnly": False,
        "firstBrokerLoginFlowAlias": "first broker login",
        "postBrokerLoginFlowAlias": POST_BROKER_FLOW,
        "config": {
            "issuer": issuer,
            "authorizationUrl": f"{endpoints}/auth",
            "tokenUrl": f"{endpoints}/token",
            "userInfoUrl": f"{endpoints}/userinfo",
            "logoutUrl": f"{endpoints}/logout",
            "jwksUrl": f"{endpoints}/certs",
            "useJwksUrl": "true",
            "validateSignature": "true",
            "clientId": f"broker-{tenant.code}",
            "clientAuthMethod": "client_secret_post",
            "clientSecret": tenant.broker_secret,
            "pkceEnabled": "true",
            "pkceMethod": "S256",
            "defaultScope": "openid profile email",
            "syncMode": "IMPORT",
        },
    }


# Settings every external OIDC provider gets unless the spec's config says otherwise.
OIDC_DEFAULTS: Mapping[str, str] = {
    "clientAuthMethod": "client_secret_post",
    "useJwksUrl": "true",
    "validateSignature": "true",
    "pkceEnabled": "true",
    "pkceMethod": "S256",
    "defaultScope": "openid profile email",
}
SAML_DEFAULTS: Mapping[str, str] = {
    "nameIDPolicyFormat": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "principalType": "SUBJECT",
    "postBindingResponse": "true",
    "postBindingAuthnRequest": "true",
    "wantAssertionsSigned": "true",
    "validateSignature": "true",
}


def external_identity_provider(provider: ExternalProvider) -> dict[str, Any]:
    """An OIDC or SAML identity provider of the state, with its department/post/role mappers
    applied on every sign-in (``syncMode: FORCE``), so a transfer shows up at the next one."""
    defaults = OIDC_DEFAULTS if provider.kind == "oidc" else SAML_DEFAULTS
    return {
        "alias": provider.alias,
        "displayName": provider.display_name,
        "providerId": provider.kind,
        "enabled": True,
        "trustEmail": provider.link_by_email,
        "storeToken": False,
        "linkOnly": False,
        "hideOnLogin": False,
        "firstBrokerLoginFlowAlias": (
            FIRST_BROKER_FLOW if provider.link_by_email else DEFAULT_FIRST_BROKER_FLOW
        ),
        "postBrokerLoginFlowAlias": POST_BROKER_FLOW,
        "config": {**defaults, "syncMode": "FORCE", **provider.config},
    }


def identity_provider_mapper(provider: ExternalProvider, mapper: ProviderMapper) -> dict[str, Any]:
    """Keycloak's mapper for one of the spec's: a claim (OIDC) or attribute (SAML) value to a
    department group or a realm role, or its value to a user attribute."""
    oidc = provider.kind == "oidc"
    config: dict[str, str] = {"syncMode": "INHERIT"}
    if mapper.attribute is not None:
        kind = "oidc-user-attribute-idp-mapper" if oidc else "saml-user-attribute-idp-mapper"
        config |= {("claim" if oidc else "attribute.name"): mapper.source}
        config["user.attribute"] = mapper.attribute
    else:
        match = json.dumps([{"key": mapper.source, "value": mapper.value}])
        target = "group" if mapper.department is not None else "role"
        prefix = "oidc" if oidc else "saml"
        kind = f"{prefix}-advanced-{target}-idp-mapper"
        if oidc:
            config |= {"claims": match, "are.claim.values.regex": "false"}
        else:
            config |= {"attributes": match, "are.attribute.values.regex": "false"}
        config[target] = (
            f"/{DEPARTMENTS_GROUP}/{mapper.department}"
            if mapper.department is not None
            else str(mapper.role)
        )
    return {
        "name": mapper.name,
        "identityProviderAlias": provider.alias,
        "identityProviderMapper": kind,
        "config": config,
    }


USER_STORAGE = "org.keycloak.storage.UserStorageProvider"
LDAP_MAPPER = "org.keycloak.storage.ldap.mappers.LDAPStorageMapper"
# Settings every directory gets unless the spec's config says otherwise: read-only (passwords
# are checked by the directory and never stored in Keycloak), users imported on first sign-in
# and their changes synced hourly, everything in the directory daily. Active Directory needs
# vendor "ad" and its own attribute names (sAMAccountName, objectGUID, person).
LDAP_DEFAULTS: Mapping[str, str] = {
    "enabled": "true",
    "vendor": "other",
    "authType": "simple",
    "editMode": "READ_ONLY",
    "importEnabled": "true",
    "syncRegistrations": "false",
    "usernameLDAPAttribute": "uid",
    "rdnLDAPAttribute": "uid",
    "uuidLDAPAttribute": "entryUUID",
    "userObjectClasses": "inetOrgPerson, organizationalPerson",
    "searchScope": "1",
    "pagination": "true",
    "useTruststoreSpi": "always",
    "connectionTimeout": "5000",
    "readTimeout": "10000",
    "trustEmail": "false",
    "fullSyncPeriod": str(24 * 3600),
    "cachePolicy": "DEFAULT",
}


def ldap_provider(provider: ExternalProvider) -> dict[str, Any]:
    """The user-federation component of a directory (its ``parentId`` is set on write)."""
    config = {
        **LDAP_DEFAULTS,
        "changedSyncPeriod": str(provider.sync_period or 3600),
        **provider.config,
    }
    return {
        "name": provider.alias,
        "providerId": "ldap",
        "providerType": USER_STORAGE,
        "config": {key: [value] for key, value in config.items()},
    }


def ldap_mappers(provider: ExternalProvider) -> list[dict[str, Any]]:
    """The directory's mappers: each department's group (one mapper per groups folder, whose
    groups' ``cn`` are the departments' codes) and attributes such as the post."""
    mappers: list[dict[str, Any]] = []
    folders: dict[str, list[str]] = {}
    for mapper in provider.mappers:
        if mapper.department is not None:
            folders.setdefault(mapper.source, []).append(mapper.department)
        elif mapper.attribute is not None:
            mappers.append(
                {
                    "name": mapper.name,
                    "providerId": "user-attribute-ldap-mapper",
                    "providerType": LDAP_MAPPER,
                    "config": {
                        "user.model.attribute": [mapper.attribute],
                        "ldap.attribute": [mapper.source],
                        "read.only": ["true"],
                        "always.read.value.from.ldap": ["true"],
                        "is.mandatory.in.ldap": ["false"],
                        "is.binary.attribute": ["false"],
                    },
                }
            )
    for folder, codes in folders.items():
        names = "".join(f"(cn={code})" for code in sorted(codes))
        mappers.append(
            {
                "name": f"departments from {folder}",
                "providerId": "group-ldap-mapper",
                "providerType": LDAP_MAPPER,
                "config": {
                    "groups.dn": [folder],
                    "groups.path": [f"/{DEPARTMENTS_GROUP}"],
                    "group.name.ldap.attribute": ["cn"],
                    "group.object.classes": ["groupOfNames"],
                    "groups.ldap.filter": [f"(|{names})"],
                    "preserve.group.inheritance": ["false"],
                    "ignore.missing.groups": ["true"],
                    "membership.ldap.attribute": ["member"],
                    "membership.attribute.type": ["DN"],
                    "membership.user.ldap.attribute": ["uid"],
                    "mode": ["READ_ONLY"],
                    "user.roles.retrieve.strategy": ["LOAD_GROUPS_BY_MEMBER_ATTRIBUTE"],
                    "memberof.ldap.attribute": ["memberOf"],
                    "drop.non.existing.groups.during.sync": ["false"],
                },
            }
        )
    return mappers


# What the login page says when Keycloak cannot complete a sign-in, in a realm with a directory:
# Keycloak's own text blames an "identity provider" when the directory does not answer.
DIRECTORY_DOWN_MESSAGES: Mapping[str, str] = {
    "en": (
        "Sign-in could not be completed. If your account comes from the state directory, the "
        "directory cannot be reached just now: please try again later."
    ),
    "hi": (
        "साइन इन पूरा नहीं हो सका। यदि आपका खाता राज्य की डायरेक्टरी से है, तो वह डायरेक्टरी "
        "अभी उपलब्ध नहीं है: कृपया कुछ देर बाद फिर प्रयास करें।"
    ),
}
DIRECTORY_DOWN_KEY = "unexpectedErrorHandlingRequestMessage"


def post_attribute() -> dict[str, Any]:
    """The user profile's ``post`` attribute (Keycloak 26 drops undeclared attributes)."""
    return {
        "name": POST_ATTRIBUTE,
        "displayName": "${post}",
        "multivalued": False,
        "permissions": {"view": ["admin", "user"], "edit": ["admin"]},
    }


def first_broker_flow() -> dict[str, Any]:
    """First sign-in through a provider trusted for e-mail: create the account, or link it to
    the one with the same e-mail without asking (Keycloak's "automatically link" recipe)."""
    alias = FIRST_BROKER_FLOW
    return {
        "alias": alias,
        "description": "First sign-in through a state provider: create, or link by e-mail",
        "executions": [
            {
                "provider": "idp-review-profile",
                "requirement": "REQUIRED",
                "config": {"alias": f"{alias} review", "update.profile.on.first.login": "missing"},
            },
            {
                "flow": f"{alias} create or link",
                "requirement": "REQUIRED",
                "executions": [
                    {"provider": "idp-create-user-if-unique", "requirement": "ALTERNATIVE"},
                    {"provider": "idp-auto-link", "requirement": "ALTERNATIVE"},
                ],
            },
        ],
    }


def browser_flow(
    admin_otp: bool, exempt_role: str | None = None, default_provider: str | None = None
) -> dict[str, Any]:
    """Browser sign-in: cookie, IdP redirector, or the form; OTP when the user is an admin.

    The shape mirrors Keycloak's built-in ``browser`` flow with its conditional OTP subflow
    replaced by one conditioned on the ``tenant_admin`` role, so admins must enrol OTP. With
    ``default_provider`` the redirector sends every sign-in to that provider at once.
    """
    form: list[dict[str, Any]] = [
        {"provider": "auth-username-password-form", "requirement": "REQUIRED"}
    ]
    if admin_otp:
        form.append(_admin_otp_subflow(f"{BROWSER_FLOW} admin otp", exempt_role))
    redirector: dict[str, Any] = {
        "provider": "identity-provider-redirector",
        "requirement": "ALTERNATIVE",
    }
    if default_provider:
        redirector["config"] = {
            "alias": f"{BROWSER_FLOW} only {default_provider}",
            "defaultProvider": default_provider,
        }
    return {
        "alias": BROWSER_FLOW,
        "description": "Browser sign-in with OTP required for tenant administrators",
        "executions": [
            {"provider": "auth-cookie", "requirement": "ALTERNATIVE"},
            redirector,
            {
                "flow": f"{BROWSER_FLOW} forms",
                "requirement": "ALTERNATIVE",
                "executions": form,
            },
        ],
    }


def post_broker_flow(admin_otp: bool, exempt_role: str | None = None) -> dict[str, Any]:
    """After a brokered sign-in: the same OTP rule, so an admin cannot skip it via the hub."""
    executions = (
        [_admin_otp_subflow(f"{POST_BROKER_FLOW} admin otp", exempt_role)] if admin_otp else []
    )
    # A flow whose only step is a condition that does not hold fails the sign-in; this
    # step succeeds for everyone else.
    executions.append({"provider": "allow-access-authenticator", "requirement": "REQUIRED"})
    return {
        "alias": POST_BROKER_FLOW,
        "description": "After sign-in through the hub: OTP for tenant administrators",
        "executions": executions,
    }


def _admin_otp_subflow(alias: str, exempt_role: str | None) -> dict[str, Any]:
    """OTP when the user holds ``tenant_admin`` (and, given ``exempt_role``, not that one:
    the conditions of a conditional subflow must all hold)."""
    conditions: list[dict[str, Any]] = [
        {
            "provider": "conditional-user-role",
            "requirement": "REQUIRED",
            "config": {"alias": f"{alias} role", "condUserRole": ADMIN_ROLE, "negate": "false"},
        }
    ]
    if exempt_role:
        conditions.append(
            {
                "provider": "conditional-user-role",
                "requirement": "REQUIRED",
                "config": {
                    "alias": f"{alias} exempt",
                    "condUserRole": exempt_role,
                    "negate": "true",
                },
            }
        )
    return {
        "flow": alias,
        "requirement": "CONDITIONAL",
        "executions": [*conditions, {"provider": "auth-otp-form", "requirement": "REQUIRED"}],
    }


# --- the whole desired state -------------------------------------------------------------


def _roles(tenant: TenantRealm) -> dict[str, str]:
    roles = dict(ROLES)
    if tenant.otp_exempt_role:
        roles[tenant.otp_exempt_role] = "Demo account of the local target: signs in without OTP"
    return roles


def tenant_resources(tenant: TenantRealm, federation: Federation) -> list[Resource]:
    """The tenant's own realm and what it owns in the hub realm, in apply order."""
    code = tenant.code
    otp = (tenant.admin_otp_required, tenant.otp_exempt_role)
    res = [
        Resource("realm", code, code, code, realm_settings(tenant)),
        *(
            Resource("role", code, name, code, {"name": name, "description": description})
            for name, description in _roles(tenant).items()
        ),
        Resource("default-role", code, DEFAULT_ROLE, code, {"name": DEFAULT_ROLE}),
        *(Resource("admin-right", code, right, code, {"name": right}) for right in ADMIN_RIGHTS),
        Resource("group", code, DEPARTMENTS_GROUP, code, {"name": DEPARTMENTS_GROUP}),
        *(
            Resource(
                "department",
                code,
                dept.code,
                code,
                {"name": dept.code, "attributes": {"displayName": [dept.name]}},
            )
            for dept in tenant.departments
        ),
        Resource("client", code, PORTAL_CLIENT, code, portal_client(tenant), ("secret",)),
        # With user rights, a password alone must open nothing: Keycloak's admin-cli would
        # otherwise take a direct grant, which no OTP step guards. The admin console signs in
        # through the browser flow (security-admin-console), OTP included.
        Resource(
            "builtin-client",
            code,
            ADMIN_CLI,
            code,
            {"clientId": ADMIN_CLI, "directAccessGrantsEnabled": False},
        ),
        Resource("profile-attribute", code, POST_ATTRIBUTE, code, post_attribute()),
        Resource("flow", code, BROWSER_FLOW, code, browser_flow(*otp, tenant.exclusive_provider)),
        Resource("flow", code, POST_BROKER_FLOW, code, post_broker_flow(*otp)),
        # Bound once the flow exists: a realm cannot point at a flow it does not have yet.
        Resource("bindings", code, code, code, {"browserFlow": BROWSER_FLOW}),
        *_provider_resources(tenant),
    ]
    hub = federation.hub
    remote = federation.remote_hub
    if hub is not None:
        if tenant.broker_to_hub and tenant.code != hub.code:
            issuer = f"{federation.server_url}/realms/{hub.code}"
            res.append(_hub_idp(tenant, hub.code, hub.display_name, issuer))
            res.append(
                Resource(
                    "client",
                    hub.code,
                    f"broker-{code}",
                    code,
                    broker_client(
                        code,
                        tenant.display_name,
                        broker_redirect_uri(federation.server_url, code, hub.code),
                        tenant.broker_secret,
                    ),
                    ("secret",),
                )
            )
        res.append(
            Resource(
                "client",
                hub.code,
                f"federation-{code}",
                code,
                federation_client(
                    code, tenant.display_name, tenant.keys_url, tenant.federation_secret
                ),
                ("secret",),
            )
        )
    elif remote is not None and tenant.broker_to_hub:
        # The hub's clients for this tenant are the hub operator's (made when it admitted
        # the tenant); only the tenant's side of the brokering is reconciled here.
        res.append(_hub_idp(tenant, remote.code, remote.display_name, remote.issuer))
    return res


def _provider_resources(tenant: TenantRealm) -> list[Resource]:
    """The state's own providers: vault secrets first (the providers read them), the
    first-login flow they link through, then each provider and its mappers."""
    code = tenant.code
    res = [
        Resource(
            "vault-secret",
            code,
            secret.name,
            code,
            {"value": secret.value},
            secret_fields=("value",),
        )
        for secret in tenant.vault
    ]
    if any(p.link_by_email for p in tenant.providers):
        res.append(Resource("flow", code, FIRST_BROKER_FLOW, code, first_broker_flow()))
    if any(p.kind == "ldap" for p in tenant.providers):
        res += [
            Resource("localization", code, locale, code, {DIRECTORY_DOWN_KEY: text})
            for locale, text in DIRECTORY_DOWN_MESSAGES.items()
            if locale in tenant.languages
        ]
    for provider in tenant.providers:
        if provider.kind == "ldap":
            res.append(Resource("ldap", code, provider.alias, code, ldap_provider(provider)))
            res += [
                Resource("ldap-mapper", code, f"{provider.alias}/{body['name']}", code, body)
                for body in ldap_mappers(provider)
            ]
            continue
        res.append(
            Resource("idp", code, provider.alias, code, external_identity_provider(provider))
        )
        res += [
            Resource(
                "idp-mapper",
                code,
                f"{provider.alias}/{mapper.name}",
                code,
                identity_provider_mapper(provider, mapper),
            )
            for mapper in provider.mappers
        ]
    return res


def _hub_idp(tenant: TenantRealm, alias: str, display_name: str, issuer: str) -> Resource:
    return Resource(
        "idp",
        tenant.code,
        alias,
        tenant.code,
        hub_identity_provider(tenant, alias=alias, display_name=display_name, issuer=issuer),
        secret_fields=("config.clientSecret",),
        write_only_fields=("config.clientSecret",),
    )


def desired_resources(federation: Federation, codes: set[str] | None = None) -> list[Resource]:
    """Desired resources of the named tenants (all when ``codes`` is None), hub first."""
    ordered = sorted(
        federation.tenants,
        key=lambda t: (federation.hub is None or t.code != federation.hub.code, t.code),
    )
    result: list[Resource] = []
    for tenant in ordered:
        if codes is None or tenant.code in codes:
            result.extend(tenant_resources(tenant, federation))
    return result
