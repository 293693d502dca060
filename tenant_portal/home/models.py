"""The tenant's home page."""

from __future__ import annotations

from typing import ClassVar

from wagtail.admin.panels import FieldPanel
from wagtail.fields import RichTextField
from wagtail.models import Page

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
