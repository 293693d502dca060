"""What the home page shows: reads only, from the catalogue table and the learner's own rows.

The part every visitor sees (what the instance is, featured courses, the competency areas as
ways into the catalogue, counts) is the same for everyone in a language, so it is kept rendered
per language until the catalogue changes (the page cache's generation), as the catalogue's
listing is. The signed-in part is the learner's own and read on each visit, in a fixed number
of queries however many courses, enrolments and certificates there are.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.core.cache import cache
from django.db.models import Count, F, Max
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language

from tenant_portal.accounts.models import Profile
from tenant_portal.catalogue.models import CatalogueEntry, CatalogueIndexPage, EntryCompetency
from tenant_portal.competencies.models import Area, Post
from tenant_portal.core import site_cache
from tenant_portal.core.page_cache import request_generation
from tenant_portal.learning.models import Certificate, Enrolment, ImportedCredential
from tenant_portal.learning.passbook import passbook
from tenant_portal.learning.path import Gap, gap_for, levels_reached

FEATURED = 6
RECENT_CERTIFICATES = 3
IN_PROGRESS = 3


def _language() -> str:
    return (get_language() or "en").split("-")[0]


def catalogue_of(request: HttpRequest) -> CatalogueIndexPage | None:
    """The site's catalogue page, read once per worker until the page tree changes."""

    def load() -> CatalogueIndexPage | None:
        found: CatalogueIndexPage | None = (
            CatalogueIndexPage.objects.filter(alias_of__isnull=True).order_by("pk").first()
        )
        return found

    found = site_cache.remembered(request_generation(request), ("catalogue-page",), load)
    return copy.copy(found) if isinstance(found, CatalogueIndexPage) else None


def catalogue_url(request: HttpRequest, catalogue: CatalogueIndexPage | None) -> str:
    """Where the catalogue is, found once per worker until the page tree changes (a page's
    URL reads its site's root paths)."""
    if catalogue is None:
        return "/courses/"

    def load() -> str:
        return str(catalogue.get_url(request) or "/courses/")

    return site_cache.remembered(request_generation(request), ("catalogue-url",), load)


def public_part(request: HttpRequest, catalogue: CatalogueIndexPage | None) -> SafeString:
    """The home page's public sections, rendered: four queries when the catalogue changed,
    none after."""
    asked = f"{catalogue.pk if catalogue else 0}|{_language()}"
    key = f"home:{request_generation(request)}:{hashlib.sha256(asked.encode()).hexdigest()}"
    html: str | None = cache.get(key)
    if html is None:
        html = render_to_string("home/home_public.html", _public_context(catalogue))
        cache.set(key, html, 300)
    return mark_safe(html)  # rendered by our own template, autoescaped


def _public_context(catalogue: CatalogueIndexPage | None) -> dict[str, Any]:
    listed = CatalogueEntry.objects.filter(retired=False, hidden=False)
    # The catalogue's order: an editor's featured courses first, then the newest.
    featured = list(listed.defer("search_text").order_by("-featured", "-modified", "pk")[:FEATURED])
    counts = listed.aggregate(
        courses=Count("pk"),
        providers=Count("provider", distinct=True),
        origins=Count("origin", distinct=True),
    )
    per_area = dict(
        EntryCompetency.objects.filter(
            entry__retired=False, entry__hidden=False, sub_theme__theme__area__retired=False
        )
        .values_list("sub_theme__theme__area__code")
        .annotate(courses=Count("entry", distinct=True))
        .values_list("sub_theme__theme__area__code", "courses")
    )
    areas = [
        (area, per_area.get(area.code, 0))
        for area in Area.objects.filter(retired=False).order_by("pk")
    ]
    return {
        "catalogue": catalogue,
        "featured": featured,
        "any_featured": any(entry.featured for entry in featured),
        "counts": counts,
        "areas": areas,
    }


@dataclass
class LearnerHome:
    """The signed-in part: where to carry on, what comes next, what was earned lately."""

    profile: Profile | None
    in_progress: Sequence[Enrolment] = field(default_factory=list)
    gap: Gap = field(default_factory=Gap)
    next_step: Any = None  # the first step of the path the officer has not enrolled in
    certificates: list[Certificate] = field(default_factory=list)
    has_posts: bool = False


def learner_part(user: User) -> LearnerHome:
    """Five queries (the profile, courses in progress, certificates, imported credentials,
    posts), two more when the officer has a post (gap_for): never one per row."""
    profile = Profile.objects.filter(user=user).first()
    in_progress = list(
        Enrolment.objects.filter(user=user, completed__isnull=True, entry__hidden=False)
        .select_related("entry")
        # The course last worked on first: its last lesson done, else its enrolment.
        .annotate(last=Coalesce(Max("lessons_done__done"), F("enrolled")))
        .order_by("-last", "pk")
    )
    certificates = list(
        Certificate.objects.filter(enrolment__user=user)
        .select_related("enrolment__entry")
        .order_by("-issued")
    )
    imported = [i for i in ImportedCredential.objects.filter(user=user) if i.revoked is None]
    posts = {post.code: post for post in Post.objects.filter(retired=False)}
    reached = levels_reached(passbook([*certificates, *imported]))
    gap = gap_for(profile, posts, reached, _language())
    enrolled = {str(e.entry.uuid) for e in in_progress}
    next_step = next((s for s in gap.path if s.course.key not in enrolled), None)
    return LearnerHome(
        profile=profile,
        in_progress=in_progress[:IN_PROGRESS],
        gap=gap,
        next_step=next_step,
        certificates=certificates[:RECENT_CERTIFICATES],
        has_posts=bool(posts),
    )
