"""Which catalogue rows are OAI-PMH items, and reading them a page at a time.

An item is a course this instance lists publicly now, or listed publicly once (DESIGN §6): a
course that was retired, hidden or made internal afterwards stays an item, ``deleted``, for
good (``deletedRecord=persistent``). A local course is known to have been offered when the
change feed holds it (``federation.Change``: a course internal from the start never enters
it); a course that arrived by federation was public here from the start.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Exists, Min, OuterRef, Q, QuerySet

from tenant_portal.catalogue.models import CatalogueEntry, EntryCompetency, EntryLanguage
from tenant_portal.competencies.models import Area
from tenant_portal.federation.models import Change

# OAI-PMH's setSpecType.
SET_SPEC = re.compile(r"([A-Za-z0-9\-_\.!~\*'\(\)])+(:[A-Za-z0-9\-_\.!~\*'\(\)]+)*")
PUBLIC = Q(retired=False, hidden=False, internal=False)
# The fields an item's header and metadata need; nothing else of the row is read.
FIELDS = (
    "pk",
    "uuid",
    "iri",
    "origin",
    "origin_name",
    "provider",
    "name",
    "description",
    "local_name",
    "languages",
    "duration_minutes",
    "competencies",
    "url",
    "version",
    "modified",
    "datestamp",
    "retired",
    "hidden",
    "internal",
)


@dataclass(frozen=True)
class Item:
    entry: CatalogueEntry
    sets: list[str] = field(default_factory=list)

    @property
    def deleted(self) -> bool:
        e = self.entry
        return bool(e.retired or e.hidden or e.internal)


@dataclass(frozen=True)
class Selection:
    """What a list request asks for: a set, and a datestamp range (inclusive bounds)."""

    set_spec: str | None = None
    start: datetime | None = None
    end: datetime | None = None


def items() -> QuerySet[CatalogueEntry]:
    offered = Exists(Change.objects.filter(uuid=OuterRef("uuid")))
    return CatalogueEntry.objects.filter(PUBLIC | ~Q(origin=settings.PORTAL.tenant) | Q(offered))


def selected(selection: Selection) -> QuerySet[CatalogueEntry]:
    rows = items()
    if selection.start is not None:
        rows = rows.filter(datestamp__gte=selection.start)
    if selection.end is not None:
        rows = rows.filter(datestamp__lte=selection.end)
    if selection.set_spec is not None:
        rows = rows.filter(in_set(selection.set_spec))
    return rows


def in_set(spec: str) -> Q:
    """The rows of a set; an unknown kind of set matches nothing."""
    kind, _, value = spec.partition(":")
    if kind == "origin":
        return Q(origin=value)
    if kind == "language":
        return Q(Exists(EntryLanguage.objects.filter(entry=OuterRef("pk"), code=value)))
    if kind == "area":
        return Q(
            Exists(
                EntryCompetency.objects.filter(
                    entry=OuterRef("pk"), sub_theme__theme__area__code=value
                )
            )
        )
    return Q(pk__in=[])


def page(selection: Selection, after: int, size: int) -> tuple[list[Item], bool]:
    """Up to ``size`` items with a key above ``after`` in key order, and whether more follow.
    Three queries whatever the size: the rows, then their languages and areas (the sets)."""
    rows = list(selected(selection).filter(pk__gt=after).order_by("pk").only(*FIELDS)[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return with_sets(rows), more


def with_sets(rows: list[CatalogueEntry]) -> list[Item]:
    ids = [row.pk for row in rows]
    languages: dict[int, list[str]] = defaultdict(list)
    for entry_id, code in (
        EntryLanguage.objects.filter(entry_id__in=ids)
        .order_by("code")
        .values_list("entry_id", "code")
    ):
        languages[entry_id].append(code)
    areas: dict[int, set[str]] = defaultdict(set)
    for entry_id, code in EntryCompetency.objects.filter(entry_id__in=ids).values_list(
        "entry_id", "sub_theme__theme__area__code"
    ):
        areas[entry_id].add(code)
    return [
        Item(
            row,
            [
                spec
                for spec in (
                    f"origin:{row.origin}",
                    *(f"area:{code}" for code in sorted(areas[row.pk])),
                    *(f"language:{code}" for code in languages[row.pk]),
                )
                if SET_SPEC.fullmatch(spec)
            ],
        )
        for row in rows
    ]


def item(course: uuid.UUID) -> Item | None:
    row = items().filter(uuid=course).only(*FIELDS).first()
    return with_sets([row])[0] if row is not None else None


def count(selection: Selection) -> int:
    return selected(selection).count()


def earliest() -> datetime | None:
    value: datetime | None = items().aggregate(first=Min("datestamp"))["first"]
    return value


def sets() -> list[tuple[str, str]]:
    """(setSpec, setName) of every set that has an item: origins, competency areas,
    languages."""
    listed = items()
    origins = dict(listed.order_by().values_list("origin", "origin_name").distinct())
    languages = (
        EntryLanguage.objects.filter(entry__in=listed)
        .order_by("code")
        .values_list("code", flat=True)
    )
    area_codes = set(
        EntryCompetency.objects.filter(entry__in=listed).values_list(
            "sub_theme__theme__area__code", flat=True
        )
    )
    areas = Area.objects.filter(code__in=area_codes).order_by("code").values_list("code", "name")
    names: dict[str, str] = {f"origin:{o}": n or o for o, n in sorted(origins.items())}
    for code, name in areas:
        names.setdefault(f"area:{code}", _english(name) or code)
    for code in languages:
        names.setdefault(f"language:{code}", _language_name(code))
    # A value that cannot be a setSpec (the protocol's pattern) is left out rather than served.
    return [(spec, name) for spec, name in names.items() if SET_SPEC.fullmatch(spec)]


def _english(name: Any) -> str:
    if isinstance(name, dict):
        return str(name.get("en") or next(iter(name.values()), ""))
    return str(name or "")


def _language_name(code: str) -> str:
    from django.conf.locale import LANG_INFO

    info = LANG_INFO.get(code, {})
    return str(info.get("name") or code)
