"""Keeping the catalogue table in step with the course pages.

A course is all the pages sharing one ``translation_key``; that key is the course's UUID and
its IRI is minted from it once, on this tenant's domain (DESIGN §6). Whenever one of those
pages is published, unpublished, moved or deleted, :func:`index_course` rewrites the course's
single catalogue row and the content learners take (``learning.content``) from its live
translations, in one transaction, and the anonymous page cache moves on to a new generation.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from html import unescape
from typing import Any

from django.conf import settings
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone
from wagtail.models import Site

from tenant_portal.catalogue.models import (
    CatalogueEntry,
    CoursePage,
    EntryCompetency,
    EntryLanguage,
)
from tenant_portal.competencies.models import SubTheme
from tenant_portal.core.page_cache import bump_generation

_TAGS = re.compile(r"<[^>]+>")

# Sent, inside the transaction, whenever a course made here changes its catalogue row
# (the federation app appends it to the change feed).
entry_changed = Signal()


def course_iri(course: uuid.UUID) -> str:
    return f"https://{settings.PORTAL.domain}/courses/{course}"


def plain_text(html: str) -> str:
    return " ".join(unescape(_TAGS.sub(" ", html)).split())


def search_text(*parts: Iterable[str]) -> str:
    """What full-text search matches: every language's text, lower-cased, tags removed."""
    return " ".join(plain_text(text).lower() for part in parts for text in part if text)


def term_snapshot(sub_theme: SubTheme, level: int) -> dict[str, Any]:
    """A KCM term at a level, as the catalogue shows it and certificates keep it."""
    return {
        "iri": sub_theme.iri,
        "level": level,
        "name": sub_theme.name,
        "theme": sub_theme.theme.name,
        "area": sub_theme.theme.area.code,
        "areaName": sub_theme.theme.area.name,
    }


def competency_snapshot(tags: Iterable[Any]) -> list[dict[str, Any]]:
    """The KCM terms a course teaches (its competency tags), with their levels."""
    return [term_snapshot(tag.sub_theme, tag.level) for tag in tags]


@transaction.atomic
def index_course(translation_key: uuid.UUID) -> CatalogueEntry | None:
    """Rewrite the catalogue row of the course ``translation_key`` from its live pages.

    The page in the site's page tree leads (its URL, provider, duration, competencies); each
    live translation adds its language, title and summary. With the lead page unpublished or
    deleted the row is retired, not deleted: enrolments and certificates still point at it.
    """
    pages = list(
        CoursePage.objects.filter(translation_key=translation_key, alias_of__isnull=True)
        .select_related("locale")
        .order_by("id")
    )
    # The page in the site's tree is the one visitors reach; its translations are shown at
    # its URL (see HomePage.localized). Without it live, the course is unreachable.
    site = Site.objects.filter(is_default_site=True).select_related("root_page").first()
    root = site.root_page.path if site else ""
    lead = next((p for p in pages if p.live and p.path.startswith(root)), None)
    live = [lead, *(p for p in pages if p.live and p is not lead)] if lead else []
    entry = CatalogueEntry.objects.select_for_update().filter(uuid=translation_key).first()
    if lead is None:
        if entry is not None and not entry.retired:
            entry.retired = True
            entry.modified = timezone.now()
            entry.version += 1
            entry.save(update_fields=["retired", "modified", "version"])
            bump_generation()
            entry_changed.send(sender=CatalogueEntry, entry=entry)
        return entry

    tags = list(
        lead.competency_tags.select_related("sub_theme__theme__area").order_by("sort_order")
    )
    languages = [p.locale.language_code for p in live]
    name = {p.locale.language_code: p.title for p in live}
    description = {p.locale.language_code: p.summary for p in live}
    # Each translation names the provider in its own language. A lead page naming none takes
    # the spec's provider (``branding.provider``, per language; the first language's name is
    # the plain one), else the site's name, which has no translations.
    own = dict(settings.PORTAL.branding.provider_name)
    if lead.provider:
        provider = lead.provider
        provider_name = {p.locale.language_code: p.provider for p in live if p.provider}
    else:
        fallback = next(iter(own.values()), settings.PORTAL.site_name)
        provider = own.get(settings.LANGUAGE_CODE) or fallback
        provider_name = own
    competencies = competency_snapshot(tags)
    fields: dict[str, Any] = {
        "iri": course_iri(translation_key),
        "origin": settings.PORTAL.tenant,
        "origin_name": settings.PORTAL.site_name,
        "provider": provider,
        "provider_name": provider_name,
        "name": name,
        "description": description,
        "languages": languages,
        "duration_minutes": lead.duration_minutes,
        "competencies": competencies,
        "url": lead.url or "",
        "page": lead,
        "internal": lead.internal,
        "retired": False,
        "modified": timezone.now(),
        "search_text": search_text(
            name.values(),
            description.values(),
            [provider, *provider_name.values()],
            [text for c in competencies for text in c["name"].values()],
        ),
    }
    if entry is None:
        entry = CatalogueEntry.objects.create(uuid=translation_key, **fields)
    else:
        for field, value in fields.items():
            setattr(entry, field, value)
        entry.version += 1
        entry.save()
    EntryLanguage.objects.filter(entry=entry).exclude(code__in=languages).delete()
    EntryLanguage.objects.bulk_create(
        [EntryLanguage(entry=entry, code=code) for code in languages], ignore_conflicts=True
    )
    EntryCompetency.objects.filter(entry=entry).delete()
    best: dict[int, int] = {}
    for tag in tags:
        best[tag.sub_theme_id] = max(tag.level, best.get(tag.sub_theme_id, 0))
    EntryCompetency.objects.bulk_create(
        [EntryCompetency(entry=entry, sub_theme_id=s, level=level) for s, level in best.items()]
    )
    # Learning reads the content model, never the pages (it imports this app's models).
    from tenant_portal.learning.content import store_from_pages

    store_from_pages(entry, live)
    bump_generation()
    entry_changed.send(sender=CatalogueEntry, entry=entry)
    return entry
