"""The hub's competency framework and posts, published as one signed document that tenants sync.

The hub serves ``/federation/v1/framework`` under the feed's token rules: a compact JWS (type
``karmayogi-framework+jws``, signed with the hub's key) of the document that
``schemas/competency-framework-v1.json`` describes: the framework (areas, themes, sub-themes,
the five levels) and the hub's posts, each with the sub-themes it needs and a level each. A
tenant reads it at the start of each sync of the hub (``federation.sync``), checks it against
the hub's keys, the schema and the framework file's own rules, and applies it in one
transaction: the framework upserted by IRI (what the document no longer has is retired), the
hub's posts upserted by code (a post of the tenant's own with the same code is kept, and the
hub's skipped), the hub's posts the document no longer has retired. A document older than the
one applied is refused; a post's older version changes nothing. The hub's posts are read-only
on the tenant; the tenant's own posts stay its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from pydantic import ValidationError

from tenant_portal.competencies.models import Framework, Post, PostCompetency, SubTheme
from tenant_portal.competencies.schema import FrameworkFile
from tenant_portal.competencies.services import framework_apply, framework_export
from tenant_portal.core.page_cache import bump_generation
from tenant_portal.federation import documents
from tenant_portal.federation.schemas import FederationSchema

log = logging.getLogger(__name__)

SCHEMA_ID = "https://karmayogi.example/schemas/competency-framework/v1.json"
SCHEMA = FederationSchema(
    Path(__file__).resolve().parent / "schemas" / "competency-framework-v1.json"
)
MEDIA_TYPE = "karmayogi-framework+jws"
# The sample framework is about 60 KB; a federation's posts add about 300 bytes each.
MAX_DOCUMENT = 4 * 1024 * 1024
WHAT = "framework document"


class FrameworkError(ValueError):
    """A framework document that cannot be applied; one line naming the field at fault."""


# --- the hub --------------------------------------------------------------------------------


def document() -> dict[str, Any] | None:
    """The document this instance publishes: its own framework (the first loaded here) and its
    own posts; None when it has no framework of its own."""
    framework = Framework.objects.filter(origin="").order_by("pk").first()
    if framework is None:
        return None
    posts = list(
        Post.objects.filter(origin="").prefetch_related("requirements__sub_theme").order_by("code")
    )
    root = f"{framework.iri.rstrip('/')}/"
    modified = max([framework.loaded, *(p.modified for p in posts)])
    return {
        "@type": "CompetencyFramework",
        "schemaVersion": SCHEMA_ID,
        "publisher": settings.PORTAL.federation_code,
        "dateModified": modified.isoformat(timespec="microseconds"),
        **framework_export(framework),
        "posts": [
            {
                "code": post.code,
                "name": post.name,
                "departmentType": post.department_type,
                "retired": post.retired,
                "version": post.version,
                "requires": [
                    {"@id": r.sub_theme.iri, "level": r.level}
                    for r in post.requirements.all()
                    # A post may name another framework's term; only this one's travel.
                    if r.sub_theme.iri.startswith(root) and not r.sub_theme.retired
                ],
            }
            for post in posts
        ],
    }


def published() -> tuple[str, dict[str, Any]] | None:
    """The document and its ETag (a digest of its content, not of its signature)."""
    payload = document()
    if payload is None:
        return None
    # A post whose every term was retired requires nothing: it is not published.
    payload["posts"] = [p for p in payload["posts"] if p["requires"]]
    body = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return f'"{hashlib.sha256(body.encode()).hexdigest()[:32]}"', payload


def sign(payload: dict[str, Any]) -> str:
    return documents.sign(payload, MEDIA_TYPE)


# --- a subscriber ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedDocument:
    framework: FrameworkFile
    posts: list[dict[str, Any]]
    modified: datetime


@dataclass
class FrameworkResult:
    framework: str = ""
    nodes_created: int = 0
    nodes_updated: int = 0
    nodes_retired: int = 0
    posts_written: int = 0
    posts_retired: int = 0
    posts_kept: int = 0  # the tenant's own, where the hub has a post of the same code
    unchanged: bool = False

    def __str__(self) -> str:
        if self.unchanged:
            return "framework unchanged"
        return (
            f"framework {self.framework}: {self.nodes_created} created, "
            f"{self.nodes_updated} updated, {self.nodes_retired} retired; posts: "
            f"{self.posts_written} written, {self.posts_retired} retired, "
            f"{self.posts_kept} of this instance kept"
        )


def verify(token: str, keys_url: str) -> dict[str, Any]:
    try:
        return documents.verify(token, keys_url, MEDIA_TYPE, WHAT, limit=MAX_DOCUMENT)
    except documents.DocumentError as exc:
        raise FrameworkError(f"{WHAT}: {documents.one_line(str(exc))}") from None


def _where(loc: tuple[int | str, ...]) -> str:
    return "/".join(str(part) for part in loc)


def parse(payload: Any, hub: str) -> ParsedDocument:
    """The checked document, or :class:`FrameworkError` naming the field at fault."""
    problem = SCHEMA.problem(payload, "(document)")
    if problem is not None:
        raise FrameworkError(f"{WHAT}: {problem}")
    if payload["publisher"] != hub:
        raise FrameworkError(f"{WHAT}: publisher: {payload['publisher']!r} is not the hub {hub}")
    try:
        parsed = FrameworkFile.model_validate(
            {key: payload[key] for key in ("framework", "levels", "areas")}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        raise FrameworkError(f"{WHAT}: {_where(first['loc']) or '(document)'}: {message}") from None
    root = str(parsed.framework.iri).rstrip("/")
    terms = {
        f"{root}/{area.code}/{theme.code}/{sub.code}"
        for area in parsed.areas
        for theme in area.themes
        for sub in theme.sub_themes
    }
    codes: set[str] = set()
    for n, post in enumerate(payload["posts"]):
        if post["code"] in codes:
            raise FrameworkError(f"{WHAT}: posts/{n}/code: {post['code']!r} appears twice")
        codes.add(post["code"])
        if not post["name"].get("en", "").strip():
            raise FrameworkError(f"{WHAT}: posts/{n}/name: needs a non-empty English text")
        named: set[str] = set()
        for m, need in enumerate(post["requires"]):
            if need["@id"] not in terms:
                raise FrameworkError(
                    f"{WHAT}: posts/{n}/requires/{m}/@id: not a sub-theme of this framework"
                )
            if need["@id"] in named:
                raise FrameworkError(f"{WHAT}: posts/{n}/requires/{m}/@id: named twice")
            named.add(need["@id"])
    try:
        modified = datetime.fromisoformat(payload["dateModified"])
    except ValueError:
        raise FrameworkError(f"{WHAT}: dateModified: not an ISO 8601 date-time") from None
    if modified.tzinfo is None:
        raise FrameworkError(f"{WHAT}: dateModified: has no time zone")
    return ParsedDocument(parsed, list(payload["posts"]), modified)


def apply(parsed: ParsedDocument, hub: str) -> FrameworkResult:
    """Write the document (see the module docstring); the caller holds the transaction."""
    assert transaction.get_connection().in_atomic_block, "apply in a transaction"
    root = str(parsed.framework.framework.iri).rstrip("/")
    held = Framework.objects.select_for_update().filter(iri=root).first()
    if held is not None and held.origin not in ("", hub):
        raise FrameworkError(f"{WHAT}: framework/iri: {root} came from {held.origin}, not {hub}")
    if held is not None and not held.origin:
        # The copy of the sample every portal loads at first start: the hub's now keeps it.
        log.info("framework: %s is the hub's from now on", root)
    if held is not None and held.published is not None:
        if parsed.modified < held.published:
            raise FrameworkError(
                f"{WHAT}: dateModified: {parsed.modified.isoformat()} is older than the "
                f"document applied ({held.published.isoformat()})"
            )
        if parsed.modified == held.published:
            return FrameworkResult(unchanged=True)
    loaded = framework_apply(parsed.framework, origin=hub)
    Framework.objects.filter(iri=root).update(published=parsed.modified)
    result = FrameworkResult(
        framework=loaded.framework,
        nodes_created=loaded.created,
        nodes_updated=loaded.updated,
        nodes_retired=loaded.retired,
    )
    _apply_posts(parsed.posts, hub, result)
    bump_generation()
    return result


def _apply_posts(posts: list[dict[str, Any]], hub: str, result: FrameworkResult) -> None:
    held = {p.code: p for p in Post.objects.filter(code__in=[p["code"] for p in posts])}
    iris = {need["@id"] for post in posts for need in post["requires"]}
    sub_themes = dict(SubTheme.objects.filter(iri__in=iris).values_list("iri", "pk"))
    for incoming in posts:
        post = held.get(incoming["code"])
        if post is not None and post.origin != hub:
            result.posts_kept += 1
            log.info(
                "framework: post %r is this instance's own; the hub's is not applied",
                incoming["code"],
            )
            continue
        retired = bool(incoming.get("retired", False))
        if post is not None and (
            post.version > incoming["version"]
            or (post.version == incoming["version"] and post.retired == retired)
        ):
            continue  # held already, or newer than this
        if post is None:
            post = Post(code=incoming["code"], origin=hub)
        post.name = incoming["name"]
        post.department_type = incoming.get("departmentType", "")
        post.retired = retired
        post.version = incoming["version"]
        post.save()
        PostCompetency.objects.filter(post=post).delete()
        PostCompetency.objects.bulk_create(
            PostCompetency(
                post=post, sub_theme_id=sub_themes[need["@id"]], level=need["level"], sort_order=n
            )
            for n, need in enumerate(incoming["requires"])
        )
        result.posts_written += 1
    result.posts_retired = (
        Post.objects.filter(origin=hub, retired=False)
        .exclude(code__in=[p["code"] for p in posts])
        .update(retired=True)
    )
