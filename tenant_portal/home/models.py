"""The tenant's home page."""

from __future__ import annotations

from typing import Any, ClassVar

from django.http import HttpRequest
from wagtail.admin.panels import FieldPanel
from wagtail.fields import RichTextField
from wagtail.models import Page

from tenant_portal.core.page_cache import cache_for_anonymous
from tenant_portal.core.site_cache import RestrictionsRemembered


class HomePage(RestrictionsRemembered, Page):
    """The site's root: a welcome in the tenant's own words."""

    intro = RichTextField(blank=True)

    content_panels: ClassVar[list[FieldPanel]] = [*Page.content_panels, FieldPanel("intro")]
    max_count_per_parent = 1

    @property
    def localized(self) -> Page:
        """Every language routes through the site's one page tree (Wagtail would switch to
        the home page's translation, whose tree holds only what was translated, so an
        untranslated course would be missing in that language). Each page then shows its
        own translation in the visitor's language: the same URL serves every language."""
        return self

    def get_context(self, request: HttpRequest, *args: Any, **kwargs: Any) -> dict[str, Any]:
        from tenant_portal.home.selectors import (
            catalogue_of,
            catalogue_url,
            learner_part,
            public_part,
        )

        context: dict[str, Any] = super().get_context(request, *args, **kwargs)
        catalogue = catalogue_of(request)
        context["public"] = public_part(request, catalogue)
        context["catalogue_url"] = catalogue_url(request, catalogue)
        if request.user.is_authenticated:
            context["learner"] = learner_part(request.user)
        else:
            # The same page for every anonymous visitor in a language (core.page_cache).
            cache_for_anonymous(request, keyed_on=())
        return context
