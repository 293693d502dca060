"""Courses and the catalogue.

Two kinds of course share one catalogue table (DESIGN §5):

- courses authored here are Wagtail pages (:class:`CoursePage`), translated the Wagtail way
  (one page per locale, sharing a ``translation_key``). Publishing any translation rewrites
  the course's single :class:`CatalogueEntry`;
- courses from other instances (the federation issues) are written straight into
  :class:`CatalogueEntry` in bulk, without pages, and shown by the catalogue page's
  ``<uuid>/`` route.

Lists, filters and search read :class:`CatalogueEntry` alone, so they cost the same whatever
the course's origin.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from django.conf import settings
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from modelcluster.fields import ParentalKey
from wagtail.admin.panels import FieldPanel, InlinePanel, MultiFieldPanel, Panel
from wagtail.contrib.routable_page.models import RoutablePageMixin, path
from wagtail.fields import RichTextField, StreamField
from wagtail.models import Orderable, Page
from wagtail.search import index

from tenant_portal.catalogue.blocks import CourseContentBlock, lessons_of
from tenant_portal.competencies.models import SubTheme, localized
from tenant_portal.core import site_cache
from tenant_portal.core.page_cache import cache_for_anonymous, request_generation
from tenant_portal.core.site_cache import RestrictionsRemembered


def default_title(language: str) -> str:
    """The title the portal gives its catalogue page, in ``language``."""
    from django.utils.translation import gettext, override

    with override(language):
        return gettext("Courses")


class CatalogueIndexPage(RestrictionsRemembered, RoutablePageMixin, Page):
    """``/courses/``: the catalogue, with the site's own course pages as its children."""

    intro = RichTextField(blank=True)

    content_panels: ClassVar[list[Panel]] = [*Page.content_panels, FieldPanel("intro")]
    parent_page_types: ClassVar[list[str]] = ["home.HomePage"]
    subpage_types: ClassVar[list[str]] = ["catalogue.CoursePage"]
    max_count_per_parent = 1

    @path("")
    def catalogue(self, request: HttpRequest) -> HttpResponse:
        # The parameters the listing reads (search.CatalogueQuery, and the page number).
        keyed_on = ("q", "area", "theme", "language", "provider", "duration", "page")
        cache_for_anonymous(request, keyed_on=keyed_on)
        return TemplateResponse(
            request,
            "catalogue/catalogue_index_page.html",
            {
                "page": self,
                "self": self,
                "heading": self.heading(request),
                "main": self.listing(request),
            },
        )

    def heading(self, request: HttpRequest) -> str:
        """The catalogue's title in the visitor's language (issue 19, item 5): the page's live
        translation when an editor made one; else, while the title is still the one the
        portal gave it (``sync_site``: "Courses" in the tenant's first language), "Courses"
        in the visitor's language; else the editor's own title. Read once per worker and
        generation."""
        language = get_language() or settings.LANGUAGE_CODE

        def load() -> str:
            translated = (
                CatalogueIndexPage.objects.filter(
                    translation_key=self.translation_key,
                    alias_of__isnull=True,
                    locale__language_code=language,
                    live=True,
                )
                .values_list("title", flat=True)
                .first()
            )
            # A translation still bearing this page's title is a copy nobody translated yet.
            if translated and translated != self.title:
                return str(translated)
            if self.title == default_title(settings.LANGUAGE_CODE):
                return default_title(language)
            return str(self.title)

        key = ("catalogue-heading", self.pk, language)
        return site_cache.remembered(request_generation(request), key, load)

    def listing(self, request: HttpRequest) -> str:
        """The filters and one page of results: the same for every visitor, so it is kept
        rendered per query, page number and language until the catalogue changes (the
        generation of core.page_cache). Signed-in visitors get it without a query."""
        from tenant_portal.catalogue.search import CatalogueQuery  # it imports this module

        query = CatalogueQuery.from_params(request.GET)
        number = request.GET.get("page", "1")[:12]
        asked = f"{self.pk}|{get_language()}|{query.as_params()}|{number}"
        key = (
            f"catalogue:{request_generation(request)}:{hashlib.sha256(asked.encode()).hexdigest()}"
        )
        html: str | None = cache.get(key)
        if html is None:
            paginator = Paginator(query.entries(), per_page=20)
            html = render_to_string(
                "catalogue/catalogue_main.html",
                {
                    "page": self,
                    "query": query,
                    "facets": query.facets(),
                    "results": paginator.get_page(number),
                    "paginator": paginator,
                    "page_query": query.as_params(),
                },
            )
            cache.set(key, html, 300)
        return mark_safe(html)  # rendered by our own template, autoescaped

    @path("<uuid:course>/")
    def record(self, request: HttpRequest, course: Any) -> HttpResponse:
        """A course that has no page here (it came by federation): its catalogue record and,
        when its content package is held here, the course itself (``learning``). A withdrawn
        course is shown only to the learners enrolled in it, who may finish it."""
        from tenant_portal.learning.progress import record_context

        entry = CatalogueEntry.objects.filter(uuid=course, hidden=False).first()
        if entry is None:
            raise Http404
        if entry.page_id is not None:
            return redirect(entry.url)
        cache_for_anonymous(request, keyed_on=())
        learning = record_context(entry, request)
        if entry.retired and (learning is None or learning["enrolment"] is None):
            raise Http404
        context = {"page": self, "self": self, "entry": entry, "learning": learning}
        if learning is not None:
            context.update(learning)
        return TemplateResponse(request, "catalogue/course_record.html", context)


class CoursePage(RestrictionsRemembered, Page):
    """A course authored on this portal."""

    summary: models.TextField[str, str] = models.TextField(
        max_length=1000, help_text=_("One or two sentences for the catalogue.")
    )
    description = RichTextField(blank=True)
    provider: models.CharField[str, str] = models.CharField(
        max_length=200, blank=True, help_text=_("Who offers the course; the site's name if empty.")
    )
    duration_minutes: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(
        default=60, help_text=_("How long the course takes, in minutes.")
    )
    internal: models.BooleanField[bool, bool] = models.BooleanField(
        default=False,
        help_text=_("Internal courses stay on this portal: they are not offered to others."),
    )
    modules = StreamField(CourseContentBlock())

    content_panels: ClassVar[list[Panel]] = [
        *Page.content_panels,
        FieldPanel("summary"),
        FieldPanel("description"),
        MultiFieldPanel(
            [FieldPanel("provider"), FieldPanel("duration_minutes"), FieldPanel("internal")],
            heading=_("About the course"),
        ),
        InlinePanel("competency_tags", label=_("Competencies"), min_num=1),
        FieldPanel("modules"),
    ]
    search_fields: ClassVar[list[index.BaseField]] = [
        *Page.search_fields,
        index.SearchField("summary"),
    ]
    parent_page_types: ClassVar[list[str]] = ["catalogue.CatalogueIndexPage"]
    subpage_types: ClassVar[list[str]] = []

    def lessons(self) -> list[Any]:
        return list(lessons_of(self.modules))

    def competencies(self) -> list[CourseCompetency]:
        """The competency tags with their sub-themes, in one query (a preview's unsaved tags
        come from memory)."""
        tags = self.competency_tags.all()
        if hasattr(tags, "select_related"):
            tags = tags.select_related("sub_theme")
        return list(tags)

    def serve(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # One URL per course: the visitor's language picks the translation to show.
        shown = self.translation_for(request)
        response: HttpResponse
        if shown.pk != self.pk:
            response = Page.serve(shown, request, *args, **kwargs)
        else:
            response = super().serve(request, *args, **kwargs)
        return response

    def translation_for(self, request: HttpRequest) -> CoursePage:
        """Wagtail's ``localized`` (the live translation in the active language, else this
        page), with the language's locale from each worker's memory (``core.site_cache``)."""
        locale = site_cache.locale_id(request, get_language())
        if locale is None or locale == self.locale_id:
            return self
        found = CoursePage.objects.filter(
            translation_key=self.translation_key, locale_id=locale, live=True
        ).first()
        return found or self

    def get_context(self, request: HttpRequest, *args: Any, **kwargs: Any) -> dict[str, Any]:
        from tenant_portal.learning.progress import course_context

        context: dict[str, Any] = super().get_context(request, *args, **kwargs)
        context.update(course_context(self, request))
        return context


class CourseCompetency(Orderable):
    """A competency the course builds, and to which proficiency level."""

    page = ParentalKey(CoursePage, on_delete=models.CASCADE, related_name="competency_tags")
    sub_theme: models.ForeignKey[SubTheme, SubTheme] = models.ForeignKey(
        SubTheme, on_delete=models.PROTECT, related_name="+"
    )
    level: models.PositiveSmallIntegerField[int, int] = models.PositiveSmallIntegerField(
        choices=[(n, str(n)) for n in range(1, 6)], default=1
    )

    panels: ClassVar[list[Panel]] = [FieldPanel("sub_theme"), FieldPanel("level")]

    def __str__(self) -> str:
        return f"{self.sub_theme} ({self.level})"


class CatalogueEntryQuerySet(models.QuerySet["CatalogueEntry"]):
    """Bulk writes move ``datestamp`` too: ``update`` and ``bulk_update`` skip ``auto_now``."""

    def update(self, **kwargs: Any) -> int:
        kwargs.setdefault("datestamp", timezone.now())
        return super().update(**kwargs)

    def bulk_update(self, objs: Any, fields: Any, *args: Any, **kwargs: Any) -> int:
        now = timezone.now()
        objs = list(objs)
        for obj in objs:
            obj.datestamp = now
        return super().bulk_update(objs, [*fields, "datestamp"], *args, **kwargs)


class CatalogueEntry(models.Model):
    """One course in the catalogue, whatever its origin: the row lists and search read.

    The fields follow the course record (DESIGN §6): ``name`` and ``description`` are language
    maps, ``competencies`` the KCM terms it teaches with their levels, kept as a snapshot for
    display; :class:`EntryLanguage` and :class:`EntryCompetency` rows serve the filters.
    """

    uuid = models.UUIDField(unique=True)
    iri = models.URLField(unique=True, max_length=400)
    origin = models.CharField(max_length=64, help_text=_("Code of the tenant that made it."))
    # As long as the course record allows (its shortText): a longer value would fail the
    # sync's page write instead of being quarantined as the record it is.
    origin_name = models.CharField(max_length=300)
    provider = models.CharField(max_length=300, db_index=True)
    provider_name = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("The provider's name by language ({lang: text}); empty: provider as is."),
    )
    name = models.JSONField()
    description = models.JSONField(default=dict)
    languages = models.JSONField(default=list)
    duration_minutes = models.PositiveIntegerField(default=0)
    competencies = models.JSONField(default=list)
    url = models.CharField(max_length=400, help_text=_("Where the course is taken."))
    page = models.ForeignKey(
        Page, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    version = models.PositiveIntegerField(default=1)
    modified = models.DateTimeField()
    internal = models.BooleanField(default=False)
    retired = models.BooleanField(default=False, help_text=_("Withdrawn by its origin."))
    hidden = models.BooleanField(default=False, help_text=_("Hidden on this portal only."))
    featured = models.BooleanField(default=False)
    local_name = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("This portal's own translations of the title ({lang: text}); kept by syncs."),
    )
    search_text = models.TextField(blank=True, editable=False)
    # When the row last changed on this instance (a local hide counts; the origin's
    # dateModified does not): the OAI-PMH datestamp. Every write moves it: save() and create()
    # by auto_now, save(update_fields=...), update() and bulk_update() through the overrides.
    datestamp = models.DateTimeField(auto_now=True, db_index=True, editable=False)

    objects = CatalogueEntryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "catalogue entries"
        indexes = [models.Index(fields=["retired", "hidden", "-featured", "-modified"])]

    def __str__(self) -> str:
        return self.title

    def save(self, *args: Any, **kwargs: Any) -> None:
        fields = kwargs.get("update_fields")
        if fields is not None:
            kwargs["update_fields"] = {*fields, "datestamp"}
        super().save(*args, **kwargs)

    @property
    def title(self) -> str:
        return localized({**self.name, **self.local_name})

    @property
    def provider_label(self) -> str:
        """The provider's name in the visitor's language where it has one (issue 19)."""
        return localized(self.provider_name) if self.provider_name else self.provider

    @property
    def summary(self) -> str:
        return localized(self.description) if self.description else ""

    @property
    def is_local(self) -> bool:
        return bool(self.origin == settings.PORTAL.tenant)


class EntryLanguage(models.Model):
    entry = models.ForeignKey(CatalogueEntry, on_delete=models.CASCADE, related_name="+")
    code = models.CharField(max_length=16)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["entry", "code"], name="entry_language")]
        indexes = [models.Index(fields=["code", "entry"])]


class EntryCompetency(models.Model):
    entry = models.ForeignKey(CatalogueEntry, on_delete=models.CASCADE, related_name="+")
    sub_theme = models.ForeignKey(SubTheme, on_delete=models.CASCADE, related_name="+")
    level = models.PositiveSmallIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["entry", "sub_theme"], name="entry_competency")
        ]
