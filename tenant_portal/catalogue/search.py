"""Catalogue filters and full-text search, over the catalogue table alone.

Full-text search uses PostgreSQL's text search with the ``simple`` configuration (no stemming:
the catalogue mixes English, Hindi, French and more, and PostgreSQL ships no stemmer for most
Indian languages), backed by a GIN index on the same expression (migration 0002). On SQLite,
the embedded default, every word must appear in the entry's search text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import QueryDict
from django.utils.translation import gettext_lazy as _

from tenant_portal.catalogue.models import CatalogueEntry, EntryCompetency, EntryLanguage
from tenant_portal.competencies.models import Area, Theme, localized

DURATIONS: dict[str, tuple[Any, int, int | None]] = {
    "short": (_("Under 1 hour"), 0, 59),
    "medium": (_("1 to 3 hours"), 60, 180),
    "long": (_("Over 3 hours"), 181, None),
}
MAX_QUERY = 200


@dataclass
class CatalogueQuery:
    """What a visitor asked the catalogue for; unknown or malformed values are ignored."""

    q: str = ""
    area: str = ""
    theme: str = ""
    language: str = ""
    provider: str = ""
    duration: str = ""
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_params(cls, params: QueryDict) -> CatalogueQuery:
        def value(name: str, limit: int) -> str:
            # Control characters (NUL among them, which PostgreSQL refuses) become spaces.
            text = "".join(c if c.isprintable() else " " for c in params.get(name, "")[:limit])
            return " ".join(text.split())

        query = cls(
            q=value("q", MAX_QUERY),
            area=value("area", 64),
            theme=value("theme", 64),
            language=value("language", 16),
            provider=value("provider", 200),
            duration=value("duration", 16),
        )
        if query.duration and query.duration not in DURATIONS:
            query.duration = ""
        return query

    def as_params(self) -> str:
        """The query string that keeps these filters on the next page of results."""
        params = QueryDict(mutable=True)
        for name in ("q", "area", "theme", "language", "provider", "duration"):
            if value := getattr(self, name):
                params[name] = value
        return params.urlencode()

    def entries(self) -> QuerySet[CatalogueEntry]:
        entries = CatalogueEntry.objects.filter(retired=False, hidden=False).defer("search_text")
        if self.language:
            entries = entries.filter(
                Exists(EntryLanguage.objects.filter(entry=OuterRef("pk"), code=self.language))
            )
        if self.area or self.theme:
            on_theme = Q(sub_theme__theme__code=self.theme) if self.theme else Q()
            on_area = Q(sub_theme__theme__area__code=self.area) if self.area else Q()
            entries = entries.filter(
                Exists(EntryCompetency.objects.filter(on_area & on_theme, entry=OuterRef("pk")))
            )
        if self.provider:
            entries = entries.filter(provider=self.provider)
        if self.duration:
            _label, low, high = DURATIONS[self.duration]
            entries = entries.filter(duration_minutes__gte=low)
            if high is not None:
                entries = entries.filter(duration_minutes__lte=high)
        if self.q:
            return self._search(entries)
        return entries.order_by("-featured", "-modified", "pk")

    def _search(self, entries: QuerySet[CatalogueEntry]) -> QuerySet[CatalogueEntry]:
        if connection.vendor == "postgresql":
            from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector

            vector = SearchVector("search_text", config="simple")
            query = SearchQuery(self.q.lower(), config="simple", search_type="websearch")
            return (
                entries.alias(document=vector)
                .filter(document=query)
                .annotate(rank=SearchRank(vector, query))
                .order_by("-rank", "-featured", "-modified", "pk")
            )
        for word in self.q.lower().split():
            entries = entries.filter(search_text__contains=word)
        return entries.order_by("-featured", "-modified", "pk")

    def facets(self) -> dict[str, Any]:
        """The choices the filter form offers: areas and themes of the framework, the
        tenant's languages, the providers that have courses, the duration bands."""
        areas = list(Area.objects.filter(retired=False).only("code", "name"))
        themes = list(
            Theme.objects.filter(retired=False, area__retired=False)
            .select_related("area")
            .only("code", "name", "area__code")
        )
        # Each provider once, by the name the filter matches, shown in the visitor's language.
        providers: dict[str, str] = {}
        for value, names in (
            CatalogueEntry.objects.filter(retired=False, hidden=False)
            .order_by("provider", "pk")
            .values_list("provider", "provider_name")
        ):
            if value not in providers or names:
                providers[value] = localized(names) if names else value
        return {
            "areas": areas,
            "themes": themes,
            "languages": settings.LANGUAGES,
            "providers": sorted(providers.items(), key=lambda item: item[1]),
            "durations": [(code, label) for code, (label, _lo, _hi) in DURATIONS.items()],
        }
