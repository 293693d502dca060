"""The portal's settings contract: what the kit renders, decoded, validated and typed once.

``portal-settings.schema.json`` beside this module is the contract (the kit validates what it
renders against the same file). :func:`load_settings` reads it from an environment mapping:

- every value in the environment is a string; a setting whose schema type is not ``string`` is
  JSON-encoded there (``"5"``, ``"true"``, ``[...]``, ``{...}``);
- ``KARMAYOGI_ENV_FILE`` names a JSON object holding settings in either form; values in the
  environment win over the file;
- every secret (``writeOnly`` in the schema) may come from the file named by ``<NAME>_FILE``
  instead (systemd credentials, Kubernetes secret files), its trailing newline stripped.

Any problem raises :class:`SettingsError` with one line naming the setting and the path inside
it; a secret's value never appears in it. Nothing here imports Django, so the kit and the
tests can use it without a configured project.
"""

from __future__ import annotations

import copy
import json
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

SCHEMA_PATH = Path(__file__).resolve().with_name("portal-settings.schema.json")
PRODUCTION_MODULE = "tenant_portal.settings.production"
ENV_FILE = "KARMAYOGI_ENV_FILE"
# Where the portal keeps its own files when KARMAYOGI_DATA_DIR is not set: beside the code.
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / ".portal-data"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message is one line a person can act on."""


# --- the typed settings ---------------------------------------------------------------------


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    name_local: str
    bidi: bool


@dataclass(frozen=True)
class Branding:
    """Name, logo and colours; the ``on_*`` colours are the text colours that meet 4.5:1."""

    site_name: str
    logo: str
    primary: str
    on_primary: str
    accent: str
    on_accent: str
    link: str
    # The provider the portal's own courses name by default, per language; empty: site_name.
    provider_name: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Oidc:
    """Sign-in through the tenant's realm."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    hub_idp: str
    hub_name: str

    @property
    def endpoints(self) -> str:
        return f"{self.issuer}/protocol/openid-connect"


@dataclass(frozen=True)
class Peer:
    code: str
    url: str


@dataclass(frozen=True)
class DeclaredMember:
    """A member of the hub's federation declared by the deployment's spec folder (no
    handshake): the hub records it as a member the first time membership is read."""

    code: str
    name: str
    tenant_type: str
    portal_url: str
    keys_url: str
    publish: bool = True


@dataclass(frozen=True)
class Subscription:
    """What a tenant takes from the hub; an empty tuple takes everything of that kind."""

    languages: tuple[str, ...] = ()
    competency_areas: tuple[str, ...] = ()
    # Origins (codes) or courses (IRIs) listed here but learned on the origin's portal.
    link_only: tuple[str, ...] = ()


@dataclass(frozen=True)
class Federation:
    """The federation this instance is part of; empty when it is on its own."""

    code: str
    is_hub: bool = False
    hub: str = ""
    hub_issuer: str = ""
    hub_url: str = ""
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    publish: bool = True
    peers: tuple[Peer, ...] = ()
    members: tuple[DeclaredMember, ...] = ()
    names: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    subscribe: Subscription | None = None


@dataclass(frozen=True)
class S3Media:
    bucket: str
    endpoint_url: str
    region: str
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True)
class Media:
    """Uploaded media: on a filesystem path (``root``) or in an S3-compatible bucket."""

    root: Path
    s3: S3Media | None = None


@dataclass(frozen=True)
class PortalSettings:
    """Everything the portal is told by its deployment, typed."""

    settings_module: str
    tenant: str
    tenant_type: str
    domain: str
    portal_url: str
    data_dir: Path
    database_url: str = field(repr=False)
    # None: the settings module's default (0; production 600).
    conn_max_age: int | None
    cache_url: str = field(repr=False)
    static_root: Path
    media: Media
    languages: tuple[Language, ...]
    time_zone: str
    departments: Mapping[str, str]
    branding: Branding
    oidc: Oidc
    federation: Federation
    allowed_hosts: tuple[str, ...]
    # None: not given (dev generates one; production refuses to start).
    secret_key: str | None = field(repr=False)
    xapi_pseudonym_key: str | None = field(repr=False)
    debug: bool
    admin_email: str
    oai_page_size: int
    page_cache_seconds: int
    max_upload_mb: int
    log_level: str
    ssl_redirect: bool
    # Seconds between re-checks of the realm session behind a portal session (at most 300).
    session_recheck_seconds: int = 300
    # xAPI statements per request to the hub, and days a delivered one stays in the outbox.
    xapi_batch_size: int = 250
    xapi_retention_days: int = 30
    # The file DATABASE_URL was read from (DATABASE_URL_FILE), read again for each new
    # connection so that a rotated password reaches the running portal (tenant_portal/database).
    database_url_file: str | None = None

    @property
    def site_name(self) -> str:
        return self.branding.site_name

    @property
    def federation_code(self) -> str:
        """This instance's code in the federation: the tenant's unless the federation says."""
        return self.federation.code or self.tenant

    @property
    def portal_host(self) -> str:
        return urlsplit(self.portal_url).hostname or "localhost"


# --- loading --------------------------------------------------------------------------------


@cache
def schema() -> dict[str, Any]:
    """The contract, as the JSON Schema file says."""
    data: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return data


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


def secret_names() -> tuple[str, ...]:
    """The top-level settings that carry a secret: each may also come from ``<NAME>_FILE``."""
    return tuple(name for name, sub in schema()["properties"].items() if sub.get("writeOnly"))


def load_settings(environ: Mapping[str, str]) -> PortalSettings:
    """Decode, validate and type the portal's settings from ``environ`` (and the file it names)."""
    files: dict[str, str] = {}
    decoded = decode(environ, files)
    validate(decoded)
    settings = build(_with_defaults(schema(), decoded))
    return replace(settings, database_url_file=files.get("DATABASE_URL"))


def parse_federation(value: Mapping[str, Any], *, tenant: str = "dev") -> Federation:
    """``KARMAYOGI_FEDERATION`` decoded, validated and typed on its own (tests swap it in)."""
    environ = {"KARMAYOGI_TENANT": tenant, "KARMAYOGI_FEDERATION": json.dumps(value)}
    return load_settings(environ).federation


def decode(environ: Mapping[str, str], files: dict[str, str] | None = None) -> dict[str, Any]:
    """The settings in ``environ`` and its env file, decoded to the schema's types; names the
    schema does not know are ignored in the environment and refused in the file. ``files``, if
    given, gets the file each secret read from ``<NAME>_FILE`` came from."""
    properties: dict[str, Any] = schema()["properties"]
    secrets = set(secret_names())
    merged: dict[str, tuple[Any, bool]] = {}  # name -> (value, came from the environment)
    if environ.get(ENV_FILE):
        for name, value in _read_env_file(environ[ENV_FILE], properties, secrets).items():
            merged[name] = (value, False)
    for name, value in environ.items():
        if name in properties or (name.endswith("_FILE") and name[:-5] in secrets):
            merged[name] = (value, True)
    decoded: dict[str, Any] = {}
    for name in secrets:
        if f"{name}_FILE" not in merged:
            continue
        if name in merged:
            raise SettingsError(f"{name}: give it or {name}_FILE, not both")
        path, _ = merged.pop(f"{name}_FILE")
        decoded[name] = _read_secret_file(f"{name}_FILE", path)
        if files is not None:
            files[name] = str(path)
    for name, (value, from_environment) in merged.items():
        decoded[name] = _decode_value(name, properties[name], value, strict=from_environment)
    return decoded


def validate(decoded: Mapping[str, Any]) -> None:
    """Raise :class:`SettingsError` for the most relevant problem of ``decoded``, if any."""
    errors = list(_validator().iter_errors(decoded))
    # What is wrong anywhere before what only production asks for: a malformed URL is
    # reported as malformed, not as "not PostgreSQL".
    general = [e for e in errors if "then" not in e.absolute_schema_path]
    error = best_match(general or errors)
    if error is not None:
        raise SettingsError(describe(error))
    codes = [lang["code"] for lang in decoded.get("KARMAYOGI_LANGUAGES", [])]
    for index, code in enumerate(codes):
        if code in codes[:index]:
            raise SettingsError(f"KARMAYOGI_LANGUAGES[{index}].code: {code!r} is listed twice")
    zone = decoded.get("KARMAYOGI_TIME_ZONE")
    if zone is not None:
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise SettingsError(f"KARMAYOGI_TIME_ZONE: {zone!r} is not a known time zone") from None


def _read_env_file(path: str, properties: Mapping[str, Any], secrets: set[str]) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except OSError as exc:
        raise SettingsError(f"{ENV_FILE}: cannot read {path} ({exc.strerror})") from None
    except ValueError as exc:
        raise SettingsError(f"{ENV_FILE}: {path} is not a JSON object ({exc})") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{ENV_FILE}: {path} is not a JSON object")
    for name in data:
        known = name in properties or (name.endswith("_FILE") and name[:-5] in secrets)
        if not known:
            raise SettingsError(f"{name}: unknown setting (in {ENV_FILE} {path})")
    return data


def _read_secret_file(name: str, path: Any) -> str:
    if not isinstance(path, str) or not path:
        raise SettingsError(f"{name}: must name a file")
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise SettingsError(f"{name}: cannot read {path} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{name}: {path} is not UTF-8 text") from None


_TYPE_NAMES = {
    "integer": "an integer",
    "boolean": "true or false",
    "array": "a JSON array",
    "object": "a JSON object",
    "number": "a number",
    "string": "a string",
    "null": "null",
}


def _decode_value(name: str, sub: Mapping[str, Any], value: Any, *, strict: bool) -> Any:
    """One setting's value in its schema type: JSON-decoded unless the schema says string.
    ``strict``: the value comes from the environment, where only strings exist."""
    kind = _resolve(sub).get("type", "string")
    if kind == "string" or not isinstance(value, str):
        if strict and not isinstance(value, str):
            raise SettingsError(f"{name}: must be a string in the environment")
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        if kind in ("array", "object"):
            # Not echoed: a JSON object here may carry a secret (the federation's).
            return _raise(f"{name}: is not valid JSON ({exc.msg} at column {exc.colno})")
        secret = _resolve(sub).get("writeOnly") or sub.get("writeOnly")
        shown = "" if secret else f"{_short(value)} "
        return _raise(f"{name}: {shown}is not {_TYPE_NAMES.get(str(kind), kind)}")


def _raise(message: str) -> Any:
    raise SettingsError(message)


def _resolve(sub: Mapping[str, Any]) -> Mapping[str, Any]:
    """``sub`` with a local ``$ref`` followed (its own keywords win)."""
    ref = sub.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
        return sub
    target = _resolve(schema()["$defs"][ref.removeprefix("#/$defs/")])
    return {**target, **{k: v for k, v in sub.items() if k != "$ref"}}


def _with_defaults(sub: Mapping[str, Any], value: Any) -> Any:
    """``value`` with the schema's defaults filled in at every level."""
    sub = _resolve(sub)
    if isinstance(value, dict):
        properties = sub.get("properties", {})
        extra = sub.get("additionalProperties")
        out: dict[str, Any] = {}
        for name, item in value.items():
            item_schema = properties.get(name, extra if isinstance(extra, dict) else {})
            out[name] = _with_defaults(item_schema, item)
        for name, item_schema in properties.items():
            resolved = _resolve(item_schema)
            if name not in out and "default" in resolved:
                out[name] = _with_defaults(resolved, copy.deepcopy(resolved["default"]))
        return out
    if isinstance(value, list) and isinstance(sub.get("items"), dict):
        return [_with_defaults(sub["items"], item) for item in value]
    return value


# --- one line per problem -------------------------------------------------------------------


def _where(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _is_secret(path: Sequence[Any]) -> bool:
    """Whether the value at ``path`` is (inside) a writeOnly property."""
    sub: Mapping[str, Any] = schema()
    for part in path:
        sub = _resolve(sub)
        if sub.get("writeOnly"):
            return True
        if isinstance(part, int):
            sub = sub.get("items", {})
        elif part in sub.get("properties", {}):
            sub = sub["properties"][part]
        elif isinstance(sub.get("additionalProperties"), dict):
            sub = sub["additionalProperties"]
        else:
            return False
    return bool(_resolve(sub).get("writeOnly"))


def _short(value: Any) -> str:
    """``value`` as the person wrote it (JSON for anything but text), cut short."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def describe(error: ValidationError) -> str:
    """One line for one schema violation: where, then what is wrong (no secret values)."""
    # jsonschema types these as possibly unset; an error from iter_errors has them all.
    instance: Any = error.instance
    expected: Any = error.validator_value
    error_schema: Any = error.schema
    path = list(error.absolute_path)
    where = _where(path)
    secret = _is_secret(path)
    shown = "" if secret else f"{_short(instance)} "
    kind = error.validator
    conditional = "then" in error.absolute_schema_path
    title = error_schema.get("title") if isinstance(error_schema, dict) else None
    if kind == "required":
        missing = [n for n in expected if n not in instance]
        name = _where([*path, missing[0]])
        what = "required setting is missing" if not path else "required key is missing"
        return f"{name}: {what}" + (" (production needs it)" if conditional else "")
    if kind == "dependentRequired":
        for name, needed in expected.items():
            absent = [n for n in needed if n not in instance]
            if name in instance and absent:
                return f"{_where([*path, name])}: needs {absent[0]} as well"
    if kind == "additionalProperties":
        known = set(error_schema.get("properties", {}))
        extra = sorted(k for k in instance if k not in known)
        what = "unknown setting" if not path else "unknown key"
        return f"{_where([*path, extra[0]])}: {what}"
    if "propertyNames" in error.absolute_schema_path:
        # The error's instance is the offending key, its path the object's.
        return f"{where}: key {_short(instance)} is not {title or 'allowed'}"
    if kind == "not" and not path and isinstance(expected, dict) and expected.get("title"):
        return str(expected["title"])
    if kind == "anyOf" and not path and title:
        return str(title)
    if kind == "type":
        names = [expected] if isinstance(expected, str) else list(expected)
        return f"{where}: {shown}is not " + " or ".join(_TYPE_NAMES.get(n, n) for n in names)
    if kind in ("pattern", "format", "const") and title:
        return f"{where}: {shown}is not {title}"
    if kind == "minLength" and title and conditional:
        return f"{where}: must be {title}" if secret else f"{where}: {shown}is not {title}"
    if kind == "minLength":
        return f"{where}: must not be empty"
    if kind == "enum":
        choices = ", ".join(str(c) for c in expected)
        return f"{where}: {shown}is not one of {choices}"
    if kind == "minimum":
        return f"{where}: {shown}is below the minimum {expected}"
    if kind == "maximum":
        return f"{where}: {shown}is above the maximum {expected}"
    if kind == "minItems":
        return f"{where}: needs at least {expected} item(s)"
    if secret:
        return f"{where}: is not valid ({kind})"
    return f"{where}: {error.message}".replace("\n", " ")


# --- building -------------------------------------------------------------------------------


def build(values: Mapping[str, Any]) -> PortalSettings:
    """Typed settings from validated values with the schema's defaults filled in."""
    portal_url = str(values["KARMAYOGI_PORTAL_URL"]).rstrip("/")
    data_dir = Path(values.get("KARMAYOGI_DATA_DIR") or DEFAULT_DATA_DIR)
    tenant = str(values["KARMAYOGI_TENANT"])
    host = urlsplit(portal_url).hostname or "localhost"
    hosts = values.get("DJANGO_ALLOWED_HOSTS")
    allowed = (
        tuple(h.strip() for h in hosts.split(",") if h.strip())
        if hosts
        else (host, "localhost", "127.0.0.1")
    )
    return PortalSettings(
        settings_module=values["DJANGO_SETTINGS_MODULE"],
        tenant=tenant,
        tenant_type=values["KARMAYOGI_TENANT_TYPE"],
        domain=values["KARMAYOGI_DOMAIN"],
        portal_url=portal_url,
        data_dir=data_dir,
        database_url=values.get("DATABASE_URL") or f"sqlite:///{data_dir / 'portal.sqlite3'}",
        conn_max_age=values.get("KARMAYOGI_CONN_MAX_AGE"),
        cache_url=values.get("KARMAYOGI_CACHE_URL") or f"filecache://{data_dir / 'cache'}",
        static_root=Path(values.get("KARMAYOGI_STATIC_ROOT") or data_dir / "static"),
        media=_media(values, data_dir),
        languages=tuple(Language(**lang) for lang in values["KARMAYOGI_LANGUAGES"]),
        time_zone=values["KARMAYOGI_TIME_ZONE"],
        departments=MappingProxyType(dict(values["KARMAYOGI_DEPARTMENTS"])),
        branding=Branding(
            site_name=values["KARMAYOGI_SITE_NAME"],
            logo=values["KARMAYOGI_LOGO"],
            primary=values["KARMAYOGI_PRIMARY"],
            on_primary=values["KARMAYOGI_ON_PRIMARY"],
            accent=values["KARMAYOGI_ACCENT"],
            on_accent=values["KARMAYOGI_ON_ACCENT"],
            link=values["KARMAYOGI_LINK"],
            provider_name=MappingProxyType(dict(values["KARMAYOGI_PROVIDER_NAME"])),
        ),
        oidc=Oidc(
            issuer=str(values["KARMAYOGI_OIDC_ISSUER"]).rstrip("/"),
            client_id=values["KARMAYOGI_OIDC_CLIENT_ID"],
            client_secret=values["KARMAYOGI_OIDC_CLIENT_SECRET"],
            hub_idp=values["KARMAYOGI_HUB_IDP"],
            hub_name=values["KARMAYOGI_HUB_NAME"],
        ),
        federation=_federation(
            values["KARMAYOGI_FEDERATION"], values.get("KARMAYOGI_FEDERATION_CLIENT_SECRET")
        ),
        allowed_hosts=allowed,
        secret_key=values.get("DJANGO_SECRET_KEY"),
        xapi_pseudonym_key=values.get("KARMAYOGI_XAPI_PSEUDONYM_KEY"),
        debug=values["DJANGO_DEBUG"],
        admin_email=values.get("KARMAYOGI_ADMIN_EMAIL") or f"webmaster@{host}",
        oai_page_size=values["KARMAYOGI_OAI_PAGE_SIZE"],
        page_cache_seconds=values["KARMAYOGI_PAGE_CACHE_SECONDS"],
        max_upload_mb=values["KARMAYOGI_MAX_UPLOAD_MB"],
        log_level=values["KARMAYOGI_LOG_LEVEL"],
        ssl_redirect=values["KARMAYOGI_SSL_REDIRECT"],
        session_recheck_seconds=values["KARMAYOGI_SESSION_RECHECK_SECONDS"],
        xapi_batch_size=values["KARMAYOGI_XAPI_BATCH_SIZE"],
        xapi_retention_days=values["KARMAYOGI_XAPI_RETENTION_DAYS"],
    )


def media_of(values: Mapping[str, Any]) -> Media:
    """Where the portal keeps its media, from its decoded settings (``decode``): the folder
    or bucket it would use. The backup of a portal reads it here, so the two cannot differ."""
    return _media(values, Path(values.get("KARMAYOGI_DATA_DIR") or DEFAULT_DATA_DIR))


def _media(values: Mapping[str, Any], data_dir: Path) -> Media:
    root = Path(values.get("KARMAYOGI_MEDIA_ROOT") or data_dir / "media")
    bucket = values.get("KARMAYOGI_MEDIA_S3_BUCKET")
    if not bucket:
        return Media(root=root)
    s3 = S3Media(
        bucket=bucket,
        endpoint_url=values.get("KARMAYOGI_MEDIA_S3_ENDPOINT_URL", ""),
        region=values.get("KARMAYOGI_MEDIA_S3_REGION", ""),
        access_key_id=values.get("AWS_ACCESS_KEY_ID", ""),
        secret_access_key=values.get("AWS_SECRET_ACCESS_KEY", ""),
    )
    return Media(root=root, s3=s3)


def _federation(config: Mapping[str, Any], separate_secret: str | None) -> Federation:
    if separate_secret and config.get("clientSecret"):
        raise SettingsError(
            "KARMAYOGI_FEDERATION_CLIENT_SECRET: KARMAYOGI_FEDERATION.clientSecret is given "
            "too; give the secret once"
        )
    subscribe = config.get("subscribe")
    return Federation(
        code=config.get("code", ""),
        is_hub=config["isHub"],
        hub=config.get("hub", ""),
        hub_issuer=str(config.get("hubIssuer", "")).rstrip("/"),
        hub_url=str(config.get("hubUrl", "")).rstrip("/"),
        client_id=config.get("clientId", ""),
        client_secret=separate_secret or config.get("clientSecret", ""),
        publish=config["publish"],
        peers=tuple(Peer(p["code"], p["url"].rstrip("/")) for p in config["peers"]),
        members=tuple(
            DeclaredMember(
                code=m["code"],
                name=m["name"],
                tenant_type=m["tenantType"],
                portal_url=m["portalUrl"].rstrip("/"),
                keys_url=m["keysUrl"],
                publish=m["publish"],
            )
            for m in config["members"]
        ),
        names=MappingProxyType(dict(config["names"])),
        subscribe=None
        if subscribe is None
        else Subscription(
            tuple(subscribe["languages"]),
            tuple(subscribe["competencyAreas"]),
            tuple(subscribe.get("linkOnly", ())),
        ),
    )
