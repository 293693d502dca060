"""The tenant spec's typed, frozen models, the rules between their fields, the JSON Schema."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal, NoReturn, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    StrictBool,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from identity.desired import MAPPABLE_ATTRIBUTES, ROLES
from infra.errors import KitError
from infra.spec.languages import LANGUAGES
from infra.spec.problems import Loc
from infra.spec.problems import dotted as _dotted

API_VERSION = "karmayogi.dev/v1"
SCHEMA_ID = "https://karmayogi.dev/schemas/tenant-v1.json"
SPEC_SUFFIXES = (".yaml", ".yml")
# The file beside the tenant specs that holds their deployment's defaults (kind Deployment).
DEPLOYMENT_FILES = ("deployment.yaml", "deployment.yml")
LOGO_SUFFIXES = (".svg", ".png")

TENANT_CODE_PATTERN = r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$"
NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"
COLOUR_PATTERN = r"^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"
HOSTNAME_PATTERN = (
    r"^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z][a-zA-Z0-9-]*$"
)

# A tenant code names a Keycloak realm and a Kubernetes namespace: these are taken already.
RESERVED_CODES = {
    "master": "it is Keycloak's administration realm",
    "default": "it is Kubernetes' default namespace",
    "deployment": "its file, deployment.yaml, holds the deployment's defaults",
}

# --- Field types: each check raises a message a person can act on -------------------------


def _fail(message: str) -> NoReturn:
    # The message travels as context so that braces in it are never read as a template.
    raise PydanticCustomError("kit", "{message}", {"message": message})


def _report(violations: Iterable[tuple[Loc, str]], info: ValidationInfo) -> None:
    """Hand rule violations to the loader's collector (it reports them all, with lines), or
    fail on the first when the model is validated without one."""
    found = list(violations)
    collector = info.context.get("rules") if isinstance(info.context, dict) else None
    if isinstance(collector, list):
        collector.extend(found)
    elif found:
        loc, message = found[0]
        _fail(f"{_dotted(loc)}: {message}")


def _check_tenant_code(value: str) -> str:
    if not re.fullmatch(TENANT_CODE_PATTERN, value):
        _fail(
            "expected 3-32 characters of a-z, 0-9 and '-', starting with a letter and "
            f"ending with a letter or digit, got {value!r}"
        )
    if value in RESERVED_CODES or value.startswith("kube-"):
        reason = RESERVED_CODES.get(value, "Kubernetes reserves kube-* namespaces")
        _fail(f"{value!r} is reserved ({reason}); choose another code")
    return value


def _check_name(value: str) -> str:
    if not re.fullmatch(NAME_PATTERN, value):
        _fail(
            "expected 2-32 characters of a-z, 0-9 and '-', starting with a letter and "
            f"ending with a letter or digit, got {value!r}"
        )
    return value


def _check_text(value: str) -> str:
    if not value.strip():
        _fail("must not be empty")
    return value.strip()


_LANGUAGE_BY_LOWER = {code.lower(): code for code in LANGUAGES}


def _check_language(value: str) -> str:
    code = _LANGUAGE_BY_LOWER.get(value.lower())
    if code is None:
        _fail(f"unknown language {value!r}; known: {', '.join(LANGUAGES)}")
    return code


def _check_colour(value: str) -> str:
    if not re.fullmatch(COLOUR_PATTERN, value):
        _fail(f"expected a colour as #RRGGBB or #RGB, got {value!r}")
    digits = value[1:].lower()
    return "#" + ("".join(c * 2 for c in digits) if len(digits) == 3 else digits)


def _is_hostname(value: str) -> bool:
    return re.fullmatch(HOSTNAME_PATTERN, value) is not None


def _check_hostname(value: str) -> str:
    if not _is_hostname(value):
        _fail(
            "expected a hostname such as learn.bihar.example (no scheme, port or path), "
            f"got {value!r}"
        )
    return value.lower()


def _check_https_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        ok = (
            parts.scheme == "https"
            and parts.hostname is not None
            and _is_hostname(parts.hostname)
            and parts.username is None
            and not parts.query
            and not parts.fragment
        )
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        ok = False
    if not ok:
        _fail(f"expected an https:// URL such as https://learn.karmayogi.example, got {value!r}")
    return value.rstrip("/")


def _check_logo(value: str) -> str:
    if PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute():
        _fail(
            "expected a path relative to this file's folder, such as branding/logo.svg, "
            f"got {value!r}"
        )
    if PurePosixPath(value).suffix.lower() not in LOGO_SUFFIXES:
        _fail(f"expected an .svg or .png file, got {value!r}")
    return value


TenantCode = Annotated[
    str,
    AfterValidator(_check_tenant_code),
    WithJsonSchema({"type": "string", "pattern": TENANT_CODE_PATTERN}),
]
Name = Annotated[
    str,
    AfterValidator(_check_name),
    WithJsonSchema({"type": "string", "pattern": NAME_PATTERN}),
]
Text = Annotated[
    str, AfterValidator(_check_text), WithJsonSchema({"type": "string", "minLength": 1})
]
LanguageTag = Annotated[
    str,
    AfterValidator(_check_language),
    WithJsonSchema({"type": "string", "enum": list(LANGUAGES)}),
]
Colour = Annotated[
    str,
    AfterValidator(_check_colour),
    WithJsonSchema({"type": "string", "pattern": COLOUR_PATTERN}),
]
Hostname = Annotated[
    str,
    AfterValidator(_check_hostname),
    WithJsonSchema({"type": "string", "pattern": HOSTNAME_PATTERN}),
]
HttpsUrl = Annotated[
    str,
    AfterValidator(_check_https_url),
    WithJsonSchema({"type": "string", "format": "uri", "pattern": "^https://"}),
]
LogoPath = Annotated[
    str,
    AfterValidator(_check_logo),
    WithJsonSchema({"type": "string", "pattern": r"\.([sS][vV][gG]|[pP][nN][gG])$"}),
]
CompetencyArea = Literal["behavioural", "functional", "domain"]
COMPETENCY_AREAS: tuple[CompetencyArea, ...] = ("behavioural", "functional", "domain")


# --- The models ---------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Metadata(_Model):
    """Who the tenant is."""

    code: TenantCode = Field(description="Slug naming the realm, the stack and the namespace.")
    name: Text = Field(description="The government's name, e.g. Bihar.")
    type: Literal["hub", "state", "country"] = Field(
        description="hub: runs the national catalogue; state or country: a tenant of it."
    )


class Colors(_Model):
    """Brand colours, normalised to lowercase #rrggbb."""

    primary: Colour = Field(description="Main colour: header, buttons (#RRGGBB or #RGB).")
    accent: Colour = Field(description="Second colour: links, highlights (#RRGGBB or #RGB).")


class Branding(_Model):
    """How the portal and the login page look."""

    display_name: Text = Field(alias="displayName", description="Shown on pages and login.")
    provider: Annotated[
        dict[LanguageTag, Text],
        WithJsonSchema(
            {
                "oneOf": [
                    {"type": "string", "minLength": 1},
                    {
                        "type": "object",
                        "minProperties": 1,
                        "additionalProperties": {"type": "string", "minLength": 1},
                    },
                ]
            }
        ),
    ] = Field(
        default_factory=dict,
        description=(
            "The provider its own courses name by default: one name (in the tenant's first "
            "language) or one per language, e.g. {en: Government of Bihar, hi: बिहार सरकार}; "
            "default: displayName."
        ),
    )
    logo: LogoPath = Field(description="SVG or PNG file, relative to this spec's folder.")
    colors: Colors


class SecretRef(_Model):
    """A secret named, never given: the target's secret store holds its value, and the realm
    reads it through Keycloak's vault."""

    secret: Name = Field(description="The secret's name in the tenant's secret store.")


def _setting_form(value: Any) -> str | None:
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict | SecretRef):
        return "ref"
    return None


SETTING_FORM_ERROR = "setting_form"
SettingValue = Annotated[
    Annotated[str, Tag("text")] | Annotated[SecretRef, Tag("ref")],
    Discriminator(
        _setting_form, custom_error_type=SETTING_FORM_ERROR, custom_error_message="bad setting"
    ),
]

# The settings in which Keycloak reads a secret from its vault, per provider type.
SECRET_SETTINGS: dict[str, tuple[str, ...]] = {
    "oidc": ("clientSecret",),
    "saml": (),
    "ldap": ("bindCredential",),
}
# Settings a provider cannot work without, per type (Keycloak's names).
REQUIRED_SETTINGS: dict[str, tuple[str, ...]] = {
    "oidc": ("clientId", "clientSecret", "authorizationUrl", "tokenUrl", "jwksUrl", "issuer"),
    "saml": ("singleSignOnServiceUrl", "idpEntityId"),
    "ldap": ("connectionUrl", "usersDn"),
}


class ProviderMapper(_Model):
    """What a sign-in through the provider sets on the user: a department, a role or the post."""

    source: Text = Field(
        description="The OIDC claim, SAML attribute or LDAP attribute to read.",
    )
    value: str | None = Field(
        default=None,
        description="The value of source that selects the department or role.",
    )
    department: Name | None = Field(
        default=None, description="A department code of spec.identity.departments."
    )
    role: str | None = Field(default=None, description="A realm role, e.g. content_creator.")
    attribute: str | None = Field(
        default=None, description="The user attribute that takes source's value, e.g. post."
    )


class Provider(_Model):
    """An identity provider or directory the state already runs, connected to its realm."""

    alias: Name = Field(description="Keycloak alias of the provider, unique in the tenant.")
    type: Literal["oidc", "saml", "ldap"]
    display_name: Text = Field(alias="displayName", description="Label on the login button.")
    config: dict[str, SettingValue] = Field(
        default_factory=dict,
        description=(
            "Keycloak's settings of the provider by their Keycloak names (issuer, clientId, "
            "connectionUrl, ...). A secret is named as {secret: <name>}, never given."
        ),
    )
    mappers: list[ProviderMapper] = Field(default_factory=list)
    exclusive: StrictBool = Field(
        default=False,
        description="Sign in only through this provider: the login page goes straight to it.",
    )
    link_by_email: StrictBool = Field(
        default=False,
        alias="linkByEmail",
        description=(
            "Trust the provider's e-mail: a first sign-in links to the account with that "
            "e-mail instead of asking the user to prove it is theirs."
        ),
    )
    ca: Text | None = Field(
        default=None,
        description=(
            "The CA that signed the provider's TLS certificate (ldaps://, or an OIDC "
            "provider's endpoints): a PEM file beside this spec, or an absolute path on the "
            "machine that applies the realm. Keycloak's truststore gets it."
        ),
    )
    sync_period: int | None = Field(
        default=None,
        alias="syncPeriod",
        ge=60,
        description="LDAP only: seconds between periodic syncs of changed users (default 1 hour).",
    )


EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+$"


def _check_email(value: str) -> str:
    if not re.fullmatch(EMAIL_PATTERN, value):
        _fail(f"expected an e-mail address such as karmayogi@bihar.example, got {value!r}")
    return value


def _check_mail_host(value: str) -> str:
    if not (_is_hostname(value) or re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", value)):
        _fail(f"expected a hostname or an IPv4 address, got {value!r}")
    return value.lower()


EmailAddress = Annotated[
    str, AfterValidator(_check_email), WithJsonSchema({"type": "string", "format": "email"})
]
MailHost = Annotated[str, AfterValidator(_check_mail_host), WithJsonSchema({"type": "string"})]


class Mail(_Model):
    """The realm's SMTP server: password resets, e-mail verification, required actions."""

    host: MailHost = Field(description="The SMTP server's hostname.")
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = Field(
        default="starttls",
        description="starttls (port 587), ssl (implicit TLS, port 465) or none (port 25).",
    )
    from_address: EmailAddress = Field(alias="from", description="The sender's address.")
    from_name: Text | None = Field(
        default=None, alias="fromName", description="The sender's name (default: displayName)."
    )
    reply_to: EmailAddress | None = Field(default=None, alias="replyTo")
    user: Text | None = Field(default=None, description="SMTP user, when the server wants one.")
    password: SettingValue | None = Field(
        default=None, description="The SMTP password, named as {secret: <name>}; needs user."
    )


class Department(_Model):
    """A ministry, department or organisation (MDO) whose people learn on the tenant."""

    code: Name = Field(description="Slug naming the department's group.")
    name: Text


class Identity(_Model):
    """Sign-in: the tenant's Keycloak realm."""

    broker_to_hub: StrictBool = Field(
        default=False,
        alias="brokerToHub",
        description="Offer 'Sign in with <hub>' on the login page; needs federation.hub.",
    )
    admin_otp: Literal["required", "optional"] = Field(
        default="required",
        alias="adminOtp",
        description="OTP for tenant_admin, also after a brokered sign-in.",
    )
    login_domain: Hostname | None = Field(
        default=None,
        alias="loginDomain",
        description=(
            "Hostname of the Keycloak serving this tenant's realm (default auth.<domain>). "
            "Tenants sharing a deployment share its Keycloak, so they name the same one. "
            "The local target ignores it: every realm is on the loopback Keycloak."
        ),
    )
    providers: list[Provider] = Field(default_factory=list)
    departments: list[Department] = Field(default_factory=list)
    mail: Mail | None = Field(
        default=None,
        description="The realm's SMTP server; without it Keycloak cannot send e-mail.",
    )


class HubRef(_Model):
    """A hub run by someone else, whose spec is not in this folder."""

    code: TenantCode = Field(description="The hub's tenant code.")
    url: HttpsUrl = Field(description="The hub portal's https:// URL.")


def _hub_form(value: Any) -> str | None:
    if isinstance(value, str):
        return "code"
    if isinstance(value, dict | HubRef):
        return "ref"
    return None


HUB_FORM_ERROR = "hub_form"
HubField = Annotated[
    Annotated[TenantCode, Tag("code")] | Annotated[HubRef, Tag("ref")],
    Discriminator(_hub_form, custom_error_type=HUB_FORM_ERROR, custom_error_message="bad hub"),
]


class Subscribe(_Model):
    """What the tenant takes from the hub's catalogue."""

    languages: list[LanguageTag] = Field(
        default_factory=list,
        description="Course languages to receive; default: the tenant's languages.",
    )
    competency_areas: list[CompetencyArea] = Field(
        default_factory=lambda: list(COMPETENCY_AREAS),
        alias="competencyAreas",
        description="KCM competency areas to receive; default: all three.",
        json_schema_extra={"default": list(COMPETENCY_AREAS)},
    )
    link_only: list[Annotated[str, Field(min_length=2, max_length=400)]] = Field(
        default_factory=list,
        alias="linkOnly",
        description=(
            "Origins (tenant codes) or courses (IRIs) listed in the catalogue but taken on the "
            "origin's portal, not learned here from their content package."
        ),
    )


class Federation(_Model):
    """How the tenant shares courses with the hub."""

    hub: HubField | None = Field(
        default=None,
        description="The hub's code when its spec is in this folder, else {code, url}.",
    )
    subscribe: Subscribe = Field(default_factory=Subscribe)
    publish: StrictBool = Field(
        default=False, description="Let the hub pull this tenant's courses and offer them."
    )


class Deployment(_Model):
    """Where and how big the tenant runs."""

    target: Literal["local", "vm", "kubernetes", "aws"] = "local"
    size: Literal["small", "medium", "large"] = Field(
        default="small", description="Resources, from one table every target reads."
    )
    name: Name | None = Field(
        default=None,
        description=(
            "The deployment this tenant runs in (default: its own code). Tenants with the "
            "same target and name share one Keycloak, e.g. the hub hosting small UTs."
        ),
    )


class Spec(_Model):
    """What the tenant runs."""

    domain: Hostname = Field(description="Hostname of the portal, e.g. learn.bihar.example.")
    languages: Annotated[list[LanguageTag], Field(min_length=1)] = Field(
        description="BCP 47 tags; the first is the default."
    )
    branding: Branding
    identity: Identity = Field(default_factory=Identity)
    federation: Federation = Field(default_factory=Federation)
    deployment: Deployment = Field(default_factory=Deployment)

    @model_validator(mode="before")
    @classmethod
    def _provider_in_first_language(cls, data: Any) -> Any:
        """A plain `branding.provider` is the name in the tenant's first language."""
        if not isinstance(data, dict):
            return data
        branding, languages = data.get("branding"), data.get("languages")
        if (
            not isinstance(branding, dict)
            or not isinstance(branding.get("provider"), str)
            or not isinstance(languages, list)
            or not languages
            or not isinstance(languages[0], str)
            or languages[0].lower() not in _LANGUAGE_BY_LOWER
        ):
            return data
        first = _LANGUAGE_BY_LOWER[languages[0].lower()]
        return {**data, "branding": {**branding, "provider": {first: branding["provider"]}}}

    @model_validator(mode="before")
    @classmethod
    def _subscribe_to_own_languages(cls, data: Any) -> Any:
        """Default `federation.subscribe.languages` to the tenant's own languages."""
        if not isinstance(data, dict):
            return data
        federation = data.get("federation", {})
        subscribe = federation.get("subscribe", {}) if isinstance(federation, dict) else None
        languages = data.get("languages")
        if (
            not isinstance(subscribe, dict)
            or "languages" in subscribe
            or not isinstance(languages, list)
            or not all(isinstance(t, str) and t.lower() in _LANGUAGE_BY_LOWER for t in languages)
        ):
            return data
        own = dict.fromkeys(_LANGUAGE_BY_LOWER[t.lower()] for t in languages)
        subscribe = {**subscribe, "languages": list(own)}
        return {**data, "federation": {**federation, "subscribe": subscribe}}


class TenantSpec(_Model):
    """One tenant: a hub, a state or a country, as written in its YAML file."""

    model_config = ConfigDict(
        title="Karmayogi tenant spec",
        json_schema_extra={"$id": SCHEMA_ID},
    )

    api_version: Literal["karmayogi.dev/v1"] = Field(alias="apiVersion")
    kind: Literal["Tenant"]
    metadata: Metadata
    spec: Spec

    _source: Path | None = PrivateAttr(default=None)
    _resolved_hub_url: str | None = PrivateAttr(default=None)
    # The deployment file beside this spec, when there is one (set by the loader).
    _deployment: DeploymentFile | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_rules(self, info: ValidationInfo) -> Self:
        """Apply the rules between fields; the loader collects them all, others get the first."""
        _report(_rule_violations(self), info)
        return self

    @property
    def source(self) -> Path:
        """The file this spec was loaded from, as it was named."""
        if self._source is None:
            raise KitError(f"tenant spec {self.code!r} was not loaded from a file")
        return self._source

    @property
    def code(self) -> str:
        return self.metadata.code

    @property
    def is_hub(self) -> bool:
        return self.metadata.type == "hub"

    @property
    def logo_path(self) -> Path:
        """The logo file, absolute, resolved from the spec file's folder."""
        return (self.source.parent / self.spec.branding.logo).resolve()

    @property
    def login_domain(self) -> str:
        """The hostname of the Keycloak serving this tenant's realm outside the local target."""
        return self.spec.identity.login_domain or f"auth.{self.spec.domain}"

    @property
    def deployment_name(self) -> str:
        """The deployment this tenant runs in; tenants of one deployment share a Keycloak."""
        return self.spec.deployment.name or self.code

    @property
    def hub_code(self) -> str | None:
        """The code of the hub this tenant federates with; None for the hub itself."""
        hub = self.spec.federation.hub
        return hub.code if isinstance(hub, HubRef) else hub

    @property
    def hub_url(self) -> str | None:
        """The hub's https URL: as given, or found from the hub's spec beside this one."""
        hub = self.spec.federation.hub
        return hub.url if isinstance(hub, HubRef) else self._resolved_hub_url

    def provider_ca(self, provider: Provider) -> Path | None:
        """The file of the provider's CA: as given when absolute, else beside this spec."""
        if provider.ca is None:
            return None
        given = Path(provider.ca).expanduser()
        return given if given.is_absolute() else (self.source.parent / given).resolve()

    @property
    def mail(self) -> Mail | None:
        """The realm's SMTP server: the spec's own, else its deployment's default."""
        own = self.spec.identity.mail
        if own is not None or self._deployment is None:
            return own
        return self._deployment.spec.mail

    @property
    def mail_origin(self) -> tuple[Path, str]:
        """The file and field that give ``mail``, for messages about it."""
        if self.spec.identity.mail is None and self._deployment is not None:
            return self._deployment.source, "spec.mail"
        return self.source, "spec.identity.mail"


class DeploymentDefaults(_Model):
    """What every tenant of the deployment inherits unless its own spec says otherwise."""

    mail: Mail | None = Field(
        default=None,
        description=(
            "The SMTP server of every realm whose spec has no identity.mail. The sender's "
            "name is each tenant's branding.displayName."
        ),
    )


class DeploymentFile(_Model):
    """The defaults of the tenants whose specs share a folder: deployment.yaml beside them."""

    model_config = ConfigDict(title="Karmayogi deployment defaults")

    api_version: Literal["karmayogi.dev/v1"] = Field(alias="apiVersion")
    kind: Literal["Deployment"]
    spec: DeploymentDefaults = Field(default_factory=DeploymentDefaults)

    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_rules(self, info: ValidationInfo) -> Self:
        _report(_deployment_violations(self), info)
        return self

    @property
    def source(self) -> Path:
        if self._source is None:
            raise KitError("the deployment defaults were not loaded from a file")
        return self._source


def _deployment_violations(file: DeploymentFile) -> Iterator[tuple[Loc, str]]:
    mail = file.spec.mail
    if mail is None:
        return
    yield from _mail_violations(("spec", "mail"), mail)
    if mail.from_name is not None:
        yield (
            ("spec", "mail", "fromName"),
            "each tenant's e-mails carry its own name (branding.displayName); remove fromName",
        )


def _rule_violations(tenant: TenantSpec) -> Iterator[tuple[Loc, str]]:
    spec = tenant.spec
    yield from _duplicates(("spec", "languages"), spec.languages, "language")
    for code in spec.branding.provider:
        if code not in spec.languages:
            yield (
                ("spec", "branding", "provider", code),
                f"{code!r} is not one of this tenant's languages ({', '.join(spec.languages)})",
            )
    subscribe, wanted = ("spec", "federation", "subscribe"), spec.federation.subscribe
    yield from _duplicates((*subscribe, "languages"), wanted.languages, "language")
    yield from _duplicates((*subscribe, "competencyAreas"), wanted.competency_areas, "area")
    departments = ("spec", "identity", "departments")
    yield from _duplicates(
        departments, [d.code for d in spec.identity.departments], "department code", "code"
    )
    providers = ("spec", "identity", "providers")
    yield from _duplicates(providers, [p.alias for p in spec.identity.providers], "alias", "alias")
    yield from _provider_violations(tenant)
    if spec.identity.mail is not None:
        yield from _mail_violations(("spec", "identity", "mail"), spec.identity.mail)

    if tenant.login_domain == spec.domain:
        yield (
            ("spec", "identity", "loginDomain"),
            "the portal is already at this hostname; Keycloak needs a name of its own "
            "(cookies are per host)",
        )
    broker = ("spec", "identity", "brokerToHub")
    publish = ("spec", "federation", "publish")
    if tenant.is_hub:
        if spec.federation.hub is not None:
            yield (
                ("spec", "federation", "hub"),
                "a hub does not federate with another hub; remove federation.hub",
            )
        if spec.identity.broker_to_hub:
            yield broker, "the hub's own realm is the one tenants broker to; set it to false"
        if spec.federation.publish:
            yield publish, "the hub's catalogue goes to every tenant; publish is for tenants"
    elif spec.federation.hub is None:
        if spec.identity.broker_to_hub:
            yield broker, "brokering needs a hub; set spec.federation.hub"
        if spec.federation.publish:
            yield publish, "publishing needs a hub; set spec.federation.hub"


def _mail_violations(at: Loc, mail: Mail) -> Iterator[tuple[Loc, str]]:
    if isinstance(mail.password, str):
        yield (
            (*at, "password"),
            "a secret is kept outside the spec, never in it: name it as {secret: <name>} "
            "and put its value in the secret store",
        )
    if mail.password is not None and mail.user is None:
        yield (*at, "password"), "a password needs a user; set mail.user"


# A setting named like a secret (tokenUrl is an address, not a token).
_SECRET_KEY = re.compile("secret|password|credential|token(?!url)", re.IGNORECASE)


def _provider_violations(tenant: TenantSpec) -> Iterator[tuple[Loc, str]]:
    identity = tenant.spec.identity
    departments = {d.code for d in identity.departments}
    exclusive = [p.alias for p in identity.providers if p.exclusive]
    for index, provider in enumerate(identity.providers):
        at: Loc = ("spec", "identity", "providers", index)
        if identity.broker_to_hub and provider.alias == tenant.hub_code:
            yield (
                (*at, "alias"),
                f"alias {provider.alias!r} is the hub's sign-in (brokerToHub); choose another",
            )
        secret_settings = SECRET_SETTINGS[provider.type]
        for key, value in provider.config.items():
            where = (*at, "config", key)
            if isinstance(value, SecretRef):
                if key not in secret_settings:
                    yield (
                        where,
                        f"Keycloak reads this {provider.type} provider's secrets from its vault "
                        f"only in {', '.join(secret_settings) or 'no setting'}",
                    )
            elif _SECRET_KEY.search(key):
                yield (
                    where,
                    "looks like a secret; secrets are kept outside the spec, never in it: "
                    "name it as {secret: <name>} and put its value in the secret store",
                )
        missing = [k for k in REQUIRED_SETTINGS[provider.type] if k not in provider.config]
        if missing:
            yield (*at, "config"), f"this {provider.type} provider needs {', '.join(missing)}"
        if provider.exclusive and provider.type == "ldap":
            yield (*at, "exclusive"), "a directory signs in through the login form; use false"
        if provider.exclusive and len(exclusive) > 1:
            yield (
                (*at, "exclusive"),
                f"only one provider can be the only way in ({', '.join(exclusive)})",
            )
        if provider.ca is not None and provider.type == "saml":
            yield (
                (*at, "ca"),
                "Keycloak opens no TLS connection to a SAML provider; its signing "
                "certificate goes in config.signingCertificate",
            )
        if provider.sync_period is not None and provider.type != "ldap":
            yield (*at, "syncPeriod"), "only a directory (type ldap) is synced"
        for number, mapper in enumerate(provider.mappers):
            yield from _mapper_violations(
                (*at, "mappers", number), provider, mapper, departments, ROLES, MAPPABLE_ATTRIBUTES
            )


def _mapper_violations(
    at: Loc,
    provider: Provider,
    mapper: ProviderMapper,
    departments: set[str],
    roles: Any,
    attributes: Sequence[str],
) -> Iterator[tuple[Loc, str]]:
    targets = [t for t in ("department", "role", "attribute") if getattr(mapper, t) is not None]
    if len(targets) != 1:
        yield at, "set exactly one of department, role and attribute"
        return
    target = targets[0]
    if target == "department" and mapper.department not in departments:
        yield (
            (*at, "department"),
            f"unknown department {mapper.department!r}; known: "
            f"{', '.join(sorted(departments)) or 'none (add them to spec.identity.departments)'}",
        )
    if target == "role" and mapper.role not in roles:
        yield (*at, "role"), f"unknown role {mapper.role!r}; known: {', '.join(roles)}"
    if target == "attribute" and mapper.attribute not in attributes:
        yield (
            (*at, "attribute"),
            f"unknown attribute {mapper.attribute!r}; known: {', '.join(attributes)}",
        )
    if target == "attribute" and mapper.value is not None:
        yield (*at, "value"), "an attribute takes the source's value; remove value"
    if target != "attribute" and provider.type != "ldap" and mapper.value is None:
        yield (*at, "value"), f"which value of {mapper.source!r} selects this {target}?"
    if (
        provider.type == "ldap"
        and target == "department"
        and mapper.value
        not in (
            None,
            mapper.department,
        )
    ):
        yield (
            (*at, "value"),
            "Keycloak takes a directory group's cn as the department's code: name the group "
            f"cn={mapper.department} in {mapper.source}, and leave out value",
        )
    if provider.type == "ldap" and target == "role":
        yield (*at, "role"), "a directory maps departments and the post; roles stay in the realm"


def _duplicates(
    loc: Loc, values: Sequence[str], what: str, key: str | None = None
) -> Iterator[tuple[Loc, str]]:
    first: dict[str, Loc] = {}
    for index, value in enumerate(values):
        where = (*loc, index, key) if key else (*loc, index)
        if value in first:
            yield where, f"{what} {value!r} is listed twice (first at {_dotted(first[value])})"
        else:
            first[value] = where


def json_schema() -> dict[str, Any]:
    """The spec's JSON Schema (keys as written in YAML), for editors and other tools."""
    schema = TenantSpec.model_json_schema(by_alias=True)
    _drop_property_titles(schema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **{k: v for k, v in schema.items() if k != "$id"},
        "description": "One tenant of a Karmayogi federation: a hub, a state or a country.",
    }


def _drop_property_titles(schema: Any) -> None:
    # Pydantic titles every property after its Python name ("Display Name"); editors show
    # the YAML key and the description instead, so the titles only add noise.
    if isinstance(schema, dict):
        for value in schema.get("properties", {}).values():
            if isinstance(value, dict):
                value.pop("title", None)
        for value in schema.values():
            _drop_property_titles(value)
    elif isinstance(schema, list):
        for value in schema:
            _drop_property_titles(value)
