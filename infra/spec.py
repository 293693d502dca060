"""The tenant spec: one YAML file a tenant, read into typed, frozen models.

`load_specs` is the entry point: it reads files and folders, checks each spec alone and the
specs of one folder together, and raises one `SpecError` listing every problem found, each
naming the file, the line and the field (as written in YAML) and saying what was expected.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import UnionType
from typing import Annotated, Any, Literal, NoReturn, Self, Union, get_args, get_origin
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
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from infra.errors import KitError
from infra.languages import LANGUAGES

API_VERSION = "karmayogi.dev/v1"
SCHEMA_ID = "https://karmayogi.dev/schemas/tenant-v1.json"
SPEC_SUFFIXES = (".yaml", ".yml")
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
}

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec, where it is, and what was expected instead."""

    file: Path
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = str(self.file) if self.line is None else f"{self.file}:{self.line}"
        message = " ".join(self.message.splitlines())
        return f"{where}: {self.field}: {message}" if self.field else f"{where}: {message}"


class SpecError(KitError):
    """One or more tenant specs are wrong; `problems` lists each, in file and line order."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


# --- Field types: each check raises a message a person can act on -------------------------


def _fail(message: str) -> NoReturn:
    # The message travels as context so that braces in it are never read as a template.
    raise PydanticCustomError("kit", "{message}", {"message": message})


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
    logo: LogoPath = Field(description="SVG or PNG file, relative to this spec's folder.")
    colors: Colors


class Provider(_Model):
    """An extra identity provider offered on the tenant's login page."""

    alias: Name = Field(description="Keycloak alias of the provider, unique in the tenant.")
    type: Literal["oidc", "saml", "ldap"]
    display_name: Text = Field(alias="displayName", description="Label on the login button.")
    config: dict[str, str] = Field(
        default_factory=dict,
        description="Provider settings (e.g. issuer, metadata URL); never secrets.",
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
    providers: list[Provider] = Field(default_factory=list)
    departments: list[Department] = Field(default_factory=list)


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
    size: Literal["small", "medium", "large"] = "small"


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

    @model_validator(mode="after")
    def _check_rules(self, info: ValidationInfo) -> Self:
        """Apply the rules between fields; the loader collects them all, others get the first."""
        violations = list(_rule_violations(self))
        collector = info.context.get("rules") if isinstance(info.context, dict) else None
        if isinstance(collector, list):
            collector.extend(violations)
        elif violations:
            loc, message = violations[0]
            _fail(f"{_dotted(loc)}: {message}")
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
    def hub_code(self) -> str | None:
        """The code of the hub this tenant federates with; None for the hub itself."""
        hub = self.spec.federation.hub
        return hub.code if isinstance(hub, HubRef) else hub

    @property
    def hub_url(self) -> str | None:
        """The hub's https URL: as given, or found from the hub's spec beside this one."""
        hub = self.spec.federation.hub
        return hub.url if isinstance(hub, HubRef) else self._resolved_hub_url


def _rule_violations(tenant: TenantSpec) -> Iterator[tuple[Loc, str]]:
    spec = tenant.spec
    yield from _duplicates(("spec", "languages"), spec.languages, "language")
    subscribe, wanted = ("spec", "federation", "subscribe"), spec.federation.subscribe
    yield from _duplicates((*subscribe, "languages"), wanted.languages, "language")
    yield from _duplicates((*subscribe, "competencyAreas"), wanted.competency_areas, "area")
    departments = ("spec", "identity", "departments")
    yield from _duplicates(
        departments, [d.code for d in spec.identity.departments], "department code", "code"
    )
    providers = ("spec", "identity", "providers")
    yield from _duplicates(providers, [p.alias for p in spec.identity.providers], "alias", "alias")
    for index, provider in enumerate(spec.identity.providers):
        for key in provider.config:
            if re.search("secret|password|credential|token", key, re.IGNORECASE):
                yield (
                    (*providers, index, "config", key),
                    "looks like a secret; secrets are kept outside the spec, never in it",
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


# --- Reading YAML -------------------------------------------------------------------------


@dataclass
class _Loaded:
    """A spec that passed the per-file checks, with its YAML tree for line numbers."""

    spec: TenantSpec
    tree: CommentedMap


def _yaml_problem(path: Path, exc: YAMLError) -> Problem:
    if isinstance(exc, MarkedYAMLError) and exc.problem_mark is not None:
        message = f"invalid YAML: {exc.problem}"
        if exc.context and exc.context_mark is not None:
            message += f" ({exc.context} on line {exc.context_mark.line + 1})"
        return Problem(path, exc.problem_mark.line + 1, "", message)
    return Problem(path, None, "", f"invalid YAML: {exc}")


def _duplicate_keys(node: Node, loc: Loc, seen_nodes: set[int]) -> Iterator[tuple[int, Loc, str]]:
    if id(node) in seen_nodes:  # an alias: already walked where its anchor was
        return
    seen_nodes.add(id(node))
    if isinstance(node, MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.value == "<<":
                continue
            key = str(key_node.value)
            line = int(key_node.start_mark.line) + 1
            if key in first:
                yield line, (*loc, key), f"duplicate key {key!r} (first on line {first[key]})"
            else:
                first[key] = line
            yield from _duplicate_keys(value_node, (*loc, key), seen_nodes)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*loc, index), seen_nodes)


def _read_tree(path: Path) -> tuple[CommentedMap | None, list[Problem]]:
    """Parse one file into a round-trip YAML tree, or say why it cannot be."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [Problem(path, None, "", f"cannot read the file: {exc.strerror}")]
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        byte = raw[exc.start]
        message = f"not valid UTF-8 (byte 0x{byte:02x}); save the file as UTF-8"
        return None, [Problem(path, line, "", message)]

    yaml = YAML(typ="rt")
    try:
        documents: list[Node] = list(yaml.compose_all(text))
    except YAMLError as exc:
        return None, [_yaml_problem(path, exc)]
    if not documents:
        return None, [Problem(path, None, "", "empty file; expected a tenant spec")]
    if len(documents) > 1:
        line = int(documents[1].start_mark.line) + 1
        return None, [Problem(path, line, "", "one tenant per file; a second document starts here")]
    duplicates = [
        Problem(path, line, _dotted(loc), message)
        for line, loc, message in _duplicate_keys(documents[0], (), set())
    ]
    if duplicates:
        return None, duplicates

    try:
        tree = yaml.load(text)
    except YAMLError as exc:
        return None, [_yaml_problem(path, exc)]
    if not isinstance(tree, CommentedMap):
        got = "nothing" if tree is None else _describe(_plain(tree))
        line = int(documents[0].start_mark.line) + 1
        message = f"expected a mapping with apiVersion, kind, metadata and spec, got {got}"
        return None, [Problem(path, line, "", message)]
    return tree, []


def _plain(value: Any) -> Any:
    """The YAML tree as plain Python values, so validation never sees ruamel's subclasses."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def _line_of(tree: CommentedMap, loc: Loc) -> int:
    """The line of the key or item at `loc`, or of its nearest parent found in the file."""
    node: Any = tree
    line = int(tree.lc.line) + 1
    for part in loc:
        if isinstance(node, CommentedMap):
            key = _key_in(node, part)
            if key is None:
                break
            line = int(node.lc.key(key)[0]) + 1
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = int(node.lc.item(part)[0]) + 1
            node = node[part]
        else:
            break
    return line


def _key_in(mapping: CommentedMap, part: str | int) -> Any:
    if part in mapping:
        return part
    return next((key for key in mapping if str(key) == str(part)), None)


def _dotted(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


# --- Turning pydantic's errors into problems ----------------------------------------------


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(str(value))


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, UnionType):
            arms = [arm for arm in get_args(annotation) if arm is not type(None)]
            models = [arm for arm in map(_unwrap, arms) if _is_model(arm)]
            annotation = models[0] if models else arms[0]
        else:
            return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _annotation_at(loc: Loc) -> Any:
    """The type the spec expects at `loc` (YAML keys), or None when it cannot tell."""
    annotation: Any = TenantSpec
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(part, int) and get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        elif isinstance(part, str) and _is_model(annotation):
            fields = {f.alias or name: f for name, f in annotation.model_fields.items()}
            if part not in fields:
                return None
            annotation = fields[part].annotation
        elif isinstance(part, str) and get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        else:
            return None
    return _unwrap(annotation)


def _strip_union_tags(loc: Loc) -> Loc:
    # Pydantic puts the chosen arm's tag into the location of errors inside `federation.hub`.
    hub = ("spec", "federation", "hub")
    if loc[:3] == hub and len(loc) > 3 and loc[3] in ("code", "ref"):
        return loc[:3] + loc[4:]
    return loc


def _message(error: Any, loc: Loc) -> str:
    kind: str = error["type"]
    value = error.get("input")
    got = _describe(value)
    if kind == "kit":
        return str(error["ctx"]["message"])
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        expected = _annotation_at(loc[:-1])
        if not _is_model(expected):
            return f"unknown field {loc[-1]!r}"
        names = [f.alias or name for name, f in expected.model_fields.items()]
        message = f"unknown field {loc[-1]!r}; expected one of {', '.join(names)}"
        close = difflib.get_close_matches(str(loc[-1]), names, n=1)
        return message + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "literal_error":
        expected = _annotation_at(loc)
        options = [str(o) for o in get_args(expected)] if get_origin(expected) is Literal else []
        if len(options) == 1:
            return f"expected {options[0]}, got {got}"
        if options:
            return f"expected one of {', '.join(options)}, got {got}"
    if kind == "string_type":
        hint = " (put it in quotes)" if isinstance(value, int | float) else ""
        return f"expected text, got {got}{hint}"
    if kind == "list_type":
        return f"expected a list, got {got}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {got}"
    if kind == "too_short":
        return "must not be empty"
    if kind == HUB_FORM_ERROR:
        return f"expected a hub code, or a mapping with code and url, got {got}"
    return str(error["msg"])


def _validate(path: Path, tree: CommentedMap) -> tuple[TenantSpec | None, list[Problem]]:
    rules: list[tuple[Loc, str]] = []
    try:
        spec = TenantSpec.model_validate(
            _plain(tree), by_alias=True, by_name=False, context={"rules": rules}
        )
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = _strip_union_tags(tuple(error["loc"]))
            problems.append(Problem(path, _line_of(tree, loc), _dotted(loc), _message(error, loc)))
        return None, problems
    spec._source = path
    problems = [Problem(path, _line_of(tree, loc), _dotted(loc), msg) for loc, msg in rules]
    logo = spec.logo_path
    if not logo.is_file():
        logo_loc: Loc = ("spec", "branding", "logo")
        message = f"no such file {spec.spec.branding.logo!r} beside this spec (looked for {logo})"
        problems.append(Problem(path, _line_of(tree, logo_loc), _dotted(logo_loc), message))
    return spec, problems


def _load(path: Path) -> tuple[_Loaded | None, list[Problem]]:
    tree, problems = _read_tree(path)
    if tree is None:
        return None, problems
    spec, problems = _validate(path, tree)
    return (_Loaded(spec, tree) if spec is not None else None), problems


# --- The public API -----------------------------------------------------------------------


def load_spec(path: Path) -> TenantSpec:
    """Read and check one spec alone (a plain hub code is not looked up); raise SpecError."""
    loaded, problems = _load(path)
    if problems or loaded is None:
        raise SpecError(_sorted(problems, [path]))
    return loaded.spec


@dataclass
class _Group:
    """Specs checked together: one folder's, or the files named one by one."""

    members: list[_Loaded] = field(default_factory=list)
    is_folder: bool = False


def load_specs(paths: Iterable[Path]) -> list[TenantSpec]:
    """Read specs from files and folders, check each alone and each folder's together.

    A folder contributes its *.yaml and *.yml files in name order; files named one by one
    are checked together as if they shared a folder. Every problem of every file is
    collected, then raised as one SpecError.
    """
    order: list[Path] = []  # files and folders, in the order their problems are listed
    problems: list[Problem] = []
    named = _Group()
    groups: list[_Group] = []
    loaded_by_file: dict[Path, _Loaded] = {}

    def load(file: Path, group: _Group) -> None:
        key = file.resolve()
        if key not in loaded_by_file:
            order.append(file)
            loaded, file_problems = _load(file)
            problems.extend(file_problems)
            if loaded is None:
                return
            loaded_by_file[key] = loaded
        group.members.append(loaded_by_file[key])

    for path in paths:
        if path.is_dir():
            order.append(path)
            files = _spec_files(path)
            if not files:
                message = "no tenant spec here (expected *.yaml or *.yml files)"
                problems.append(Problem(path, None, "", message))
            group = _Group(is_folder=True)
            groups.append(group)
            for file in files:
                load(file, group)
        elif path.exists():
            load(path, named)
        else:
            order.append(path)
            problems.append(Problem(path, None, "", "no such file or folder"))
    groups.append(named)
    if not order:
        problems.append(Problem(Path("."), None, "", "no spec file or folder given"))
        order.append(Path("."))

    for group in groups:
        problems.extend(_cross_file_problems(group))
    if problems:
        raise SpecError(_sorted(problems, order))
    unique: dict[int, TenantSpec] = {id(m.spec): m.spec for g in groups for m in g.members}
    return list(unique.values())


def _cross_file_problems(group: _Group) -> Iterator[Problem]:
    def problem(member: _Loaded, loc: Loc, message: str) -> Problem:
        return Problem(member.spec.source, _line_of(member.tree, loc), _dotted(loc), message)

    by_code: dict[str, _Loaded] = {}
    by_domain: dict[str, _Loaded] = {}
    hub: _Loaded | None = None
    for member in group.members:
        spec = member.spec
        if (other := by_code.setdefault(spec.code, member)) is not member:
            message = f"code {spec.code!r} is already used by {other.spec.source}"
            yield problem(member, ("metadata", "code"), message)
        domain = spec.spec.domain
        if (other := by_domain.setdefault(domain, member)) is not member:
            message = f"domain {domain!r} is already used by {other.spec.source}"
            yield problem(member, ("spec", "domain"), message)
        if spec.is_hub:
            if hub is None:
                hub = member
            else:
                message = f"a second hub; {hub.spec.source} is already the hub here"
                yield problem(member, ("metadata", "type"), message)

    hub_loc: Loc = ("spec", "federation", "hub")
    siblings: dict[tuple[Path, str], _Loaded | None] = {}
    for member in group.members:
        spec = member.spec
        given = spec.spec.federation.hub
        if spec.is_hub or given is None:
            continue
        if isinstance(given, HubRef):
            # Someone else's hub, unless its spec is here: then the URL must point at it.
            if hub is not None and hub.spec.code == given.code:
                host = urlsplit(given.url).hostname
                if host != hub.spec.spec.domain:
                    message = (
                        f"hub {given.code!r} in {hub.spec.source} is at "
                        f"https://{hub.spec.spec.domain}, not {given.url}"
                    )
                    yield problem(member, (*hub_loc, "url"), message)
            continue
        found = hub if hub is not None and hub.spec.code == given else None
        if found is None and not group.is_folder:
            folder = spec.source.parent
            if (folder, given) not in siblings:
                siblings[folder, given] = _sibling_hub(folder, given)
            found = siblings[folder, given]
        if found is not None:
            spec._resolved_hub_url = f"https://{found.spec.spec.domain}"
        elif hub is not None:
            named = by_code.get(given)
            if named is not None:
                message = (
                    f"{given!r} ({named.spec.source}) is a {named.spec.metadata.type}, "
                    f"not the hub; the hub here is {hub.spec.code!r}"
                )
            else:
                message = f"no hub {given!r} here; the hub here is {hub.spec.code!r}"
            yield problem(member, hub_loc, message)
        else:
            message = (
                f"no hub spec {given!r} beside this one; when someone else runs the hub, "
                f"write {{code: {given}, url: https://…}}"
            )
            yield problem(member, hub_loc, message)


def _sibling_hub(folder: Path, code: str) -> _Loaded | None:
    """The hub spec `code` among a named file's neighbours; its own problems are its own."""
    for file in _spec_files(folder):
        loaded, _ = _load(file)
        if loaded is not None and loaded.spec.is_hub and loaded.spec.code == code:
            return loaded
    return None


def _spec_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix in SPEC_SUFFIXES and p.is_file() and not p.name.startswith(".")
    )


def _sorted(problems: list[Problem], order: list[Path]) -> list[Problem]:
    rank = {path: index for index, path in enumerate(order)}
    return sorted(problems, key=lambda p: (rank.get(p.file, len(rank)), p.line or 0))


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
