"""What the hub accepts at ``/xapi/statements``: a subset of xAPI 1.0.3 statements that cannot
carry a learner's identity.

A statement that breaks a rule is refused whole with a one-line reason naming the field
(:class:`StatementError`). Beyond the specification's own rules:

- the actor must be an Agent identified by an ``account`` whose name is a pseudonym (16-64
  lowercase hex digits); ``mbox``, ``mbox_sha1sum``, ``openid`` and ``name`` are refused, so
  no e-mail address or name ever enters the hub;
- free-text and person-shaped fields are refused too (``result.response``,
  ``result.extensions``, ``context.instructor``, ``context.team``, ``attachments``), and the
  object is an Activity or a StatementRef (never an Agent, Group or SubStatement);
- ``context.platform`` (the sending tenant's code) is required: the view checks it against
  the caller's token.

:func:`loads` reads the request body first, and refuses what would break the hub rather than a
rule: JSON nested deeper than any statement (Python's parser would recurse until it fails),
numbers that are not finite or are absurdly long, and text PostgreSQL cannot store (NUL, lone
surrogates) or no statement needs (other control characters).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from tenant_portal.xapi.statements import AREAS_EXTENSION, COMPLETED, VOIDED

PSEUDONYM = re.compile(r"[0-9a-f]{16,64}")
MAX_IRI = 400
MAX_TEXT = 1000
MAX_AREAS = 50
# A statement nests 6 levels deep (statement, context, extensions, key, list, IRI); extension
# values may nest more, never this much.
MAX_DEPTH = 32
MAX_DIGITS = 40
# C0 controls but tab, line feed and carriage return; lone surrogates (JSON can escape them).
BAD_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
# Properties the LRS sets or that do not make two statements different (xAPI 1.0.3, 2.4.1
# "Statement comparison"): a retry with another authority is still the same statement.
NOT_COMPARED = ("id", "authority", "stored", "version")

TOP = {"id", "actor", "verb", "object", "result", "context", "timestamp", "stored", "authority"}
PERSONAL_ACTOR = ("mbox", "mbox_sha1sum", "openid", "name")
RESULT = {"completion", "success", "score", "duration"}
CONTEXT = {"platform", "extensions", "registration", "language", "revision", "contextActivities"}
DEFINITION = {"type", "name", "description", "moreInfo", "extensions"}


class StatementError(ValueError):
    """A statement the hub refuses; the message names the field and the rule."""


@dataclass(frozen=True)
class Parsed:
    id: uuid.UUID
    statement: dict[str, Any]
    platform: str
    learner: str
    verb: str
    object_id: str
    voids: uuid.UUID | None
    timestamp: datetime | None
    areas: tuple[str, ...]
    digest: str


def _number(text: str) -> float | int:
    if len(text) > MAX_DIGITS:
        raise StatementError(f"a number is longer than {MAX_DIGITS} characters")
    number = float(text) if any(c in text for c in ".eE") else int(text)
    if isinstance(number, float) and not math.isfinite(number):
        raise StatementError("a number is too large")
    return number


def _constant(name: str) -> Any:
    raise StatementError(f"{name} is not a JSON number")


def loads(raw: bytes) -> Any:
    """A request body as JSON, or :class:`StatementError` saying what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise StatementError("the body is not UTF-8") from None
    try:
        value = json.loads(text, parse_int=_number, parse_float=_number, parse_constant=_constant)
    except StatementError:
        raise
    except RecursionError:
        raise StatementError(f"the body nests deeper than {MAX_DEPTH} levels") from None
    except ValueError:
        raise StatementError("the body is not JSON") from None
    _sound(value)
    return value


def _sound(value: Any) -> None:
    """Refuse nesting past :data:`MAX_DEPTH` and text with :data:`BAD_TEXT`, without recursion
    (the value may be as deep as the parser allowed)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise StatementError(f"the body nests deeper than {MAX_DEPTH} levels")
        if isinstance(item, str):
            if BAD_TEXT.search(item):
                raise StatementError("a text holds a control character or a lone surrogate")
        elif isinstance(item, dict):
            for key, inner in item.items():
                stack.append((key, depth))
                stack.append((inner, depth + 1))
        elif isinstance(item, list):
            stack.extend((inner, depth + 1) for inner in item)


def _iri(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_IRI:
        raise StatementError(f"{field}: must be an IRI of at most {MAX_IRI} characters")
    parts = urlsplit(value)
    if not parts.scheme or any(c.isspace() for c in value):
        raise StatementError(f"{field}: must be an absolute IRI")
    return value


def _uuid(value: Any, field: str) -> uuid.UUID:
    if isinstance(value, str) and len(value) <= 64:
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise StatementError(f"{field}: must be a UUID")


def _language_map(value: Any, field: str) -> None:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and 0 < len(k) <= 35 and isinstance(v, str) and len(v) <= MAX_TEXT
        for k, v in value.items()
    ):
        raise StatementError(f"{field}: must be a language map of texts")


def _only(value: dict[str, Any], allowed: set[str], field: str, why: str = "") -> None:
    for key in value:
        if key not in allowed:
            raise StatementError(f"{field}.{key}: not accepted{why}")


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise StatementError(f"{field}: must be an object")
    return value


def _actor(value: Any) -> str:
    actor = _object(value, "actor")
    if actor.get("objectType", "Agent") != "Agent":
        raise StatementError("actor.objectType: only an Agent with an account is accepted")
    for key in PERSONAL_ACTOR:
        if key in actor:
            raise StatementError(
                f"actor.{key}: only an account is accepted; personal data never enters the hub"
            )
    _only(actor, {"objectType", "account"}, "actor")
    account = _object(actor.get("account"), "actor.account")
    _only(account, {"homePage", "name"}, "actor.account")
    home = _iri(account.get("homePage"), "actor.account.homePage")
    if urlsplit(home).scheme not in ("http", "https"):
        raise StatementError("actor.account.homePage: must be an http(s) URL")
    name = account.get("name")
    if not isinstance(name, str) or not PSEUDONYM.fullmatch(name):
        raise StatementError(
            "actor.account.name: must be a pseudonym of 16-64 lowercase hex digits"
        )
    return name


def _verb(value: Any) -> str:
    verb = _object(value, "verb")
    _only(verb, {"id", "display"}, "verb")
    if "display" in verb:
        _language_map(verb["display"], "verb.display")
    return _iri(verb.get("id"), "verb.id")


def _target(value: Any) -> tuple[str, uuid.UUID | None]:
    """The object's id, and the referenced statement when it is a StatementRef."""
    target = _object(value, "object")
    kind = target.get("objectType", "Activity")
    if kind == "StatementRef":
        _only(target, {"objectType", "id"}, "object")
        ref = _uuid(target.get("id"), "object.id")
        return str(ref), ref
    if kind != "Activity":
        raise StatementError("object.objectType: only an Activity or a StatementRef is accepted")
    _only(target, {"objectType", "id", "definition"}, "object")
    if "definition" in target:
        definition = _object(target["definition"], "object.definition")
        _only(definition, DEFINITION, "object.definition")
        for key in ("name", "description"):
            if key in definition:
                _language_map(definition[key], f"object.definition.{key}")
        for key in ("type", "moreInfo"):
            if key in definition:
                _iri(definition[key], f"object.definition.{key}")
        if "extensions" in definition:
            _extensions(definition["extensions"], "object.definition.extensions")
    return _iri(target.get("id"), "object.id"), None


def _extensions(value: Any, field: str) -> dict[str, Any]:
    extensions = _object(value, field)
    for key in extensions:
        _iri(key, f"{field} key")
    return extensions


def _result(value: Any) -> None:
    result = _object(value, "result")
    _only(result, RESULT, "result", " (free text could carry personal data)")
    for key in ("completion", "success"):
        if key in result and not isinstance(result[key], bool):
            raise StatementError(f"result.{key}: must be true or false")
    if "score" in result:
        score = _object(result["score"], "result.score")
        _only(score, {"scaled", "raw", "min", "max"}, "result.score")
        for key, number in score.items():
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise StatementError(f"result.score.{key}: must be a number")
        if "scaled" in score and not -1 <= score["scaled"] <= 1:
            raise StatementError("result.score.scaled: must be between -1 and 1")
    if "duration" in result and not (
        isinstance(result["duration"], str)
        and re.fullmatch(r"P[0-9YMWDTHS.]{1,40}", result["duration"])
    ):
        raise StatementError("result.duration: must be an ISO 8601 duration")


def _context(value: Any) -> tuple[str, tuple[str, ...]]:
    context = _object(value, "context")
    for key in ("instructor", "team"):
        if key in context:
            raise StatementError(f"context.{key}: not accepted; personal data never enters the hub")
    _only(context, CONTEXT, "context")
    platform = context.get("platform")
    if not isinstance(platform, str) or not platform or len(platform) > 64:
        raise StatementError("context.platform: the sending tenant's code is required")
    if "registration" in context:
        _uuid(context["registration"], "context.registration")
    for key in ("language", "revision"):
        if key in context and not (isinstance(context[key], str) and len(context[key]) <= 64):
            raise StatementError(f"context.{key}: must be a short text")
    if "contextActivities" in context:
        _object(context["contextActivities"], "context.contextActivities")
    areas: list[str] = []
    if "extensions" in context:
        extensions = _extensions(context["extensions"], "context.extensions")
        if AREAS_EXTENSION in extensions:
            field = f"context.extensions[{AREAS_EXTENSION}]"
            listed = extensions[AREAS_EXTENSION]
            if not isinstance(listed, list) or len(listed) > MAX_AREAS:
                raise StatementError(f"{field}: must be a list of at most {MAX_AREAS} IRIs")
            areas = [_iri(item, field) for item in listed]
    return platform, tuple(sorted(set(areas)))


def _timestamp(value: Any, field: str) -> datetime:
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) and len(value) < 40 else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise StatementError(f"{field}: must be an ISO 8601 time with its offset")
    return when


def digest(statement: dict[str, Any]) -> str:
    compared = {k: v for k, v in statement.items() if k not in NOT_COMPARED}
    text = json.dumps(compared, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def parse(value: Any, *, statement_id: uuid.UUID | None = None) -> Parsed:
    """Check one statement; ``statement_id`` is the id a PUT names (the body must agree)."""
    statement = _object(value, "statement")
    if "attachments" in statement:
        raise StatementError("attachments: not accepted")
    if "version" in statement:
        version = statement["version"]
        if not (isinstance(version, str) and re.fullmatch(r"1\.0(\.\d+)?", version)):
            raise StatementError("version: only 1.0.x statements are accepted")
    _only({k: v for k, v in statement.items() if k != "version"}, TOP, "statement")
    if "id" in statement:
        given = _uuid(statement["id"], "id")
        if statement_id is not None and given != statement_id:
            raise StatementError("id: differs from the statementId parameter")
        statement_id = given
    if statement_id is None:
        statement_id = uuid.uuid4()
    pseudonym = _actor(statement.get("actor"))
    verb = _verb(statement.get("verb"))
    object_id, ref = _target(statement.get("object"))
    if verb == VOIDED and ref is None:
        raise StatementError(
            "object: a voiding statement must reference a statement (StatementRef)"
        )
    if "result" in statement:
        _result(statement["result"])
    platform, areas = _context(statement.get("context"))
    timestamp = (
        _timestamp(statement["timestamp"], "timestamp") if "timestamp" in statement else None
    )
    body = {k: v for k, v in statement.items() if k not in ("stored", "authority", "version")}
    body["id"] = str(statement_id)
    return Parsed(
        id=statement_id,
        statement=body,
        platform=platform,
        learner=f"{platform}:{pseudonym}",
        verb=verb,
        object_id=object_id,
        voids=ref if verb == VOIDED else None,
        timestamp=timestamp,
        areas=areas if verb == COMPLETED else (),
        digest=digest(body),
    )
