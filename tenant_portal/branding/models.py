"""Per-site branding, filled from the rendered spec (one deployment could serve several sites)."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from wagtail.contrib.settings.models import BaseSiteSetting, register_setting

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
