"""Per-site branding, filled from the rendered spec (one deployment could serve several sites)."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from django.db import models
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest
from wagtail.contrib.settings.models import BaseSiteSetting, register_setting

from tenant_portal.core import site_cache
from tenant_portal.core.page_cache import bump_generation

hex_colour = RegexValidator(r"^#[0-9a-f]{6}$", "a colour as #rrggbb")


@register_setting(icon="image")
class BrandingSettings(BaseSiteSetting):
    """Name, logo and colours; the ``on_*`` colours are the text colours that meet 4.5:1."""

    display_name = models.CharField(max_length=120)
    logo_svg = models.TextField(blank=True, help_text="The tenant's logo as inline SVG.")
    primary = models.CharField(max_length=7, validators=[hex_colour], default="#1f4e79")
    on_primary = models.CharField(max_length=7, validators=[hex_colour], default="#ffffff")
    accent = models.CharField(max_length=7, validators=[hex_colour], default="#f2a900")
    on_accent = models.CharField(max_length=7, validators=[hex_colour], default="#000000")
    link = models.CharField(max_length=7, validators=[hex_colour], default="#1f4e79")

    class Meta:
        verbose_name = "branding"

    def __str__(self) -> str:
        return self.display_name

    @classmethod
    def for_request(cls, request: HttpRequest) -> BrandingSettings:
        """The request's site's branding, read once per worker and generation (every page
        shows it; ``core.site_cache``)."""
        attr_name = cls.get_cache_attr_name()
        found: BrandingSettings | None = getattr(request, attr_name, None)
        if found is None:
            found = site_cache.site_setting(request, cls, cls.for_site)
            found._request = request  # as Wagtail's own for_request: page URLs use it
            setattr(request, attr_name, found)
        return found


@receiver(post_save, sender=BrandingSettings)
@receiver(post_delete, sender=BrandingSettings)
def branding_changed(sender: Any, **kwargs: Any) -> None:
    bump_generation()  # pages, and each worker's remembered branding, carry it
