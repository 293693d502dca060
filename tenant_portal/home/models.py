"""The tenant's home page."""

from __future__ import annotations

from typing import ClassVar

from wagtail.admin.panels import FieldPanel
from wagtail.fields import RichTextField
from wagtail.models import Page


class HomePage(Page):
    """The site's root: a welcome in the tenant's own words."""

    intro = RichTextField(blank=True)

    content_panels: ClassVar[list[FieldPanel]] = [*Page.content_panels, FieldPanel("intro")]
    max_count_per_parent = 1
