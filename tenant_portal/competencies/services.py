"""Loading a competency framework file: validate all of it, then upsert in one transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import transaction
from pydantic import ValidationError

from tenant_portal.competencies.models import (
    Area,
    Framework,
    Post,
    PostCompetency,
    ProficiencyLevel,
    SubTheme,
    Theme,
)
from tenant_portal.competencies.schema import FrameworkFile
from tenant_portal.core.page_cache import bump_generation

SAMPLE = Path(__file__).resolve().parent / "data" / "kcm-sample.json"
SAMPLE_POSTS = Path(__file__).resolve().parent / "data" / "posts-sample.json"


class CompetencyFileError(ValueError):
    """The file cannot be loaded; one line naming the file and the entry at fault."""


@dataclass(frozen=True)
class LoadResult:
    framework: str
    created: int
    updated: int
    retired: int

    def __str__(self) -> str:
        return (
            f"{self.framework}: {self.created} created, {self.updated} updated, "
            f"{self.retired} retired"
        )


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_framework_file(path: Path) -> FrameworkFile:
    """The validated file, or a one-line :class:`CompetencyFileError`."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CompetencyFileError(f"{path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise CompetencyFileError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise CompetencyFileError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from None
    try:
        return FrameworkFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        where = _path(first["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise CompetencyFileError(f"{path}: {where}: {message}{more}") from None


@transaction.atomic
def framework_load(*, path: Path) -> LoadResult:
    """Upsert the file's framework by IRI; what the file no longer has is retired."""
    return framework_apply(parse_framework_file(path))


@transaction.atomic
def framework_apply(parsed: FrameworkFile, *, origin: str = "") -> LoadResult:
    """Upsert a validated framework by IRI (``origin``: the hub it came from, empty for a
    file loaded here); what it no longer has is retired."""
    meta = parsed.framework
    root = str(meta.iri).rstrip("/")
    framework, _ = Framework.objects.update_or_create(
        iri=root, defaults={"version": meta.version, "name": meta.name, "origin": origin}
    )
    for level in parsed.levels:
        ProficiencyLevel.objects.update_or_create(
            framework=framework,
            level=level.level,
            defaults={"name": level.name, "description": level.description},
        )

    counts = {"created": 0, "updated": 0}
    seen: set[str] = set()

    def upsert(model: Any, iri: str, position: int, entry: Any, **parent: Any) -> Any:
        seen.add(iri)
        fields = {
            "code": entry.code,
            "name": entry.name,
            "description": entry.description,
            "position": position,
            "retired": False,
            **parent,
        }
        node = model.objects.filter(iri=iri).first()
        if node is None:
            counts["created"] += 1
            return model.objects.create(iri=iri, **fields)
        if any(getattr(node, k) != v for k, v in fields.items()):
            counts["updated"] += 1
            for key, value in fields.items():
                setattr(node, key, value)
            node.save()
        return node

    for a_pos, area_in in enumerate(parsed.areas):
        area_iri = f"{root}/{area_in.code}"
        area = upsert(Area, area_iri, a_pos, area_in, framework=framework)
        for t_pos, theme_in in enumerate(area_in.themes):
            theme_iri = f"{area_iri}/{theme_in.code}"
            theme = upsert(Theme, theme_iri, t_pos, theme_in, area=area)
            for s_pos, sub_in in enumerate(theme_in.sub_themes):
                upsert(SubTheme, f"{theme_iri}/{sub_in.code}", s_pos, sub_in, theme=theme)

    retired = 0
    for model in (Area, Theme, SubTheme):
        stale = model.objects.filter(iri__startswith=f"{root}/", retired=False).exclude(
            iri__in=seen
        )
        retired += stale.update(retired=True)
    if counts["created"] or counts["updated"] or retired:
        bump_generation()  # the catalogue's filters show the framework
    return LoadResult(f"{root} {meta.version}", counts["created"], counts["updated"], retired)


def framework_export(framework: Framework) -> dict[str, Any]:
    """The framework as the file (and the hub's framework document) has it: what is not
    retired, in order."""

    def named(node: Any) -> dict[str, Any]:
        return {"code": node.code, "name": node.name, "description": node.description}

    areas = []
    for area in Area.objects.filter(framework=framework, retired=False).prefetch_related(
        "themes__sub_themes"
    ):
        themes = []
        for theme in area.themes.all():
            if theme.retired:
                continue
            subs = [named(s) for s in theme.sub_themes.all() if not s.retired]
            if subs:
                themes.append({**named(theme), "subThemes": subs})
        if themes:
            areas.append({**named(area), "themes": themes})
    return {
        "framework": {"iri": framework.iri, "version": framework.version, "name": framework.name},
        "levels": [
            {"level": lv.level, "name": lv.name, "description": lv.description}
            for lv in framework.levels.all()
        ],
        "areas": areas,
    }


@transaction.atomic
def sample_posts_load(path: Path = SAMPLE_POSTS) -> int:
    """The demo posts of ``path`` this instance does not have yet, as its own (the hub's
    demo: they federate to its tenants); the number created. A competency is named by the
    codes on its path (``area/theme/sub-theme``) in the framework loaded here."""
    data = json.loads(path.read_text(encoding="utf-8"))
    created = 0
    for n, entry in enumerate(data["posts"]):
        if Post.objects.filter(code=entry["code"]).exists():
            continue
        post = Post.objects.create(
            code=entry["code"], name=entry["name"], department_type=entry["departmentType"]
        )
        for m, need in enumerate(entry["requires"]):
            area, theme, sub = need["competency"].split("/")
            term = SubTheme.objects.filter(
                code=sub, theme__code=theme, theme__area__code=area, retired=False
            ).first()
            if term is None:
                raise CompetencyFileError(
                    f"{path}: posts[{n}].requires[{m}]: no competency {need['competency']}"
                )
            PostCompetency.objects.create(
                post=post, sub_theme=term, level=need["level"], sort_order=m
            )
        created += 1
    return created
