"""Reading specs: YAML with line numbers, pydantic's errors as problems, folders checked together.

`load_specs` is the entry point: it reads files and folders, checks each spec alone and the
specs of one folder together, and raises one `SpecError` listing every problem found, each
naming the file, the line and the field (as written in YAML) and saying what was expected.
A `deployment.yaml` beside the specs is no tenant: it holds the defaults of the folder's
tenants (`kind: Deployment`), checked the same way and handed to each spec it serves.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ValidationError,
)
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from infra.spec.model import (
    DEPLOYMENT_FILES,
    HUB_FORM_ERROR,
    SETTING_FORM_ERROR,
    SPEC_SUFFIXES,
    DeploymentFile,
    HubRef,
    TenantSpec,
)
from infra.spec.problems import Loc, Problem, SpecError
from infra.spec.problems import dotted as _dotted

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


def _read_tree(
    path: Path, what: str = "a tenant spec"
) -> tuple[CommentedMap | None, list[Problem]]:
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
        return None, [Problem(path, None, "", f"empty file; expected {what}")]
    if len(documents) > 1:
        line = int(documents[1].start_mark.line) + 1
        one = "one tenant per file" if what == "a tenant spec" else "one document per file"
        return None, [Problem(path, line, "", f"{one}; a second document starts here")]
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
        keys = (
            "apiVersion, kind, metadata and spec"
            if what == "a tenant spec"
            else "apiVersion, kind and spec"
        )
        message = f"expected a mapping with {keys}, got {got}"
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


def _annotation_at(loc: Loc, root: type[BaseModel] = TenantSpec) -> Any:
    """The type the file expects at `loc` (YAML keys), or None when it cannot tell."""
    annotation: Any = root
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
    # ... and into those inside a provider's setting (text or a secret's reference).
    if loc[:3] == ("spec", "identity", "providers") and len(loc) > 6 and loc[6] in ("text", "ref"):
        return loc[:6] + loc[7:]
    return loc


def _message(error: Any, loc: Loc, root: type[BaseModel] = TenantSpec) -> str:
    kind: str = error["type"]
    value = error.get("input")
    got = _describe(value)
    if kind == "kit":
        return str(error["ctx"]["message"])
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        expected = _annotation_at(loc[:-1], root)
        if not _is_model(expected):
            return f"unknown field {loc[-1]!r}"
        names = [f.alias or name for name, f in expected.model_fields.items()]
        message = f"unknown field {loc[-1]!r}; expected one of {', '.join(names)}"
        close = difflib.get_close_matches(str(loc[-1]), names, n=1)
        return message + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "literal_error":
        expected = _annotation_at(loc, root)
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
    if kind == SETTING_FORM_ERROR:
        hint = " (put it in quotes)" if isinstance(value, int | float) else ""
        return f"expected text{hint} or a secret's name as {{secret: <name>}}, got {got}"
    if kind == HUB_FORM_ERROR:
        return f"expected a hub code, or a mapping with code and url, got {got}"
    return str(error["msg"])


_Model = TypeVar("_Model", TenantSpec, DeploymentFile)


def _validated(
    model: type[_Model], path: Path, tree: CommentedMap
) -> tuple[_Model | None, list[Problem]]:
    """``tree`` validated as ``model``: every problem with its line, rule violations included."""
    rules: list[tuple[Loc, str]] = []
    try:
        found = model.model_validate(
            _plain(tree), by_alias=True, by_name=False, context={"rules": rules}
        )
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = _strip_union_tags(tuple(error["loc"]))
            message = _message(error, loc, model)
            problems.append(Problem(path, _line_of(tree, loc), _dotted(loc), message))
        return None, problems
    found._source = path
    return found, [Problem(path, _line_of(tree, loc), _dotted(loc), msg) for loc, msg in rules]


def _validate(path: Path, tree: CommentedMap) -> tuple[TenantSpec | None, list[Problem]]:
    spec, problems = _validated(TenantSpec, path, tree)
    if spec is None:
        return None, problems
    logo = spec.logo_path
    if not logo.is_file():
        logo_loc: Loc = ("spec", "branding", "logo")
        message = f"no such file {spec.spec.branding.logo!r} beside this spec (looked for {logo})"
        problems.append(Problem(path, _line_of(tree, logo_loc), _dotted(logo_loc), message))
    return spec, problems


def _deployment_file(folder: Path) -> tuple[Path | None, DeploymentFile | None, list[Problem]]:
    """The deployment defaults beside the specs of ``folder``, if it has a deployment file."""
    found = [folder / name for name in DEPLOYMENT_FILES if (folder / name).is_file()]
    if not found:
        return None, None, []
    if len(found) > 1:
        message = f"a second deployment file; {found[0]} already gives this folder's defaults"
        return found[1], None, [Problem(found[1], None, "", message)]
    tree, problems = _read_tree(found[0], "the deployment's defaults")
    if tree is None:
        return found[0], None, problems
    file, problems = _validated(DeploymentFile, found[0], tree)
    return found[0], file, problems


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
    # Each spec inherits the defaults of the deployment file in its folder.
    folders = [p for p in order if p.is_dir()] + [f.parent for f in order if f.is_file()]
    defaults: dict[Path, DeploymentFile | None] = {}
    for folder in folders:
        if folder.resolve() in defaults:
            continue
        where, deployment, found = _deployment_file(folder)
        defaults[folder.resolve()] = deployment
        if where is not None:
            order.append(where)
        problems.extend(found)
    for loaded in loaded_by_file.values():
        loaded.spec._deployment = defaults.get(loaded.spec.source.parent.resolve())
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

    yield from _deployment_problems(group, problem)
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


def _deployment_problems(
    group: _Group, problem: Callable[[_Loaded, Loc, str], Problem]
) -> Iterator[Problem]:
    """One Keycloak per deployment has one hostname; no portal may sit on that hostname."""
    portals = {m.spec.spec.domain: m for m in group.members}
    first: dict[str, _Loaded] = {}
    for member in group.members:
        spec = member.spec
        login: Loc = ("spec", "identity", "loginDomain")
        holder = portals.get(spec.login_domain)
        if holder is not None and holder is not member:
            message = f"{spec.login_domain!r} is the portal domain of {holder.spec.source}"
            yield problem(member, login, message)
        if spec.spec.deployment.target == "local":
            continue  # one loopback Keycloak serves every local realm, whatever the names
        other = first.setdefault(spec.deployment_name, member)
        if other is member:
            continue
        shared = f"shares deployment {spec.deployment_name!r} with {other.spec.source}"
        if spec.spec.deployment.target != other.spec.spec.deployment.target:
            message = (
                f"{shared}, which deploys to {other.spec.spec.deployment.target!r}; "
                "one deployment has one target"
            )
            yield problem(member, ("spec", "deployment", "target"), message)
        elif spec.login_domain != other.spec.login_domain:
            message = (
                f"{spec.login_domain!r} differs from {other.spec.login_domain!r}: this tenant "
                f"{shared}, whose Keycloak has one hostname; give both the same loginDomain"
            )
            yield problem(member, login, message)


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
        if p.suffix in SPEC_SUFFIXES
        and p.is_file()
        and not p.name.startswith(".")
        and p.name not in DEPLOYMENT_FILES
    )


def _sorted(problems: list[Problem], order: list[Path]) -> list[Problem]:
    rank = {path: index for index, path in enumerate(order)}
    return sorted(problems, key=lambda p: (rank.get(p.file, len(rank)), p.line or 0))
