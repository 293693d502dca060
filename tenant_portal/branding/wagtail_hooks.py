"""The tenant's colours in Wagtail's admin (its documented custom-colour properties)."""

from __future__ import annotations

import colorsys

from django.utils.html import format_html
from django.utils.safestring import SafeString
from wagtail import hooks
from wagtail.models import Site

from tenant_portal.branding.models import BrandingSettings


def hsl_parts(colour: str) -> tuple[int, int, int]:
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    hue, lightness, saturation = colorsys.rgb_to_hls(r, g, b)
    return round(hue * 360), round(saturation * 100), round(lightness * 100)


@hooks.register("insert_global_admin_css")
def brand_colours() -> SafeString | str:
    site = Site.objects.filter(is_default_site=True).first()
    if site is None:
        return ""
    brand = BrandingSettings.for_site(site)
    if brand.on_primary != "#ffffff":
        # Wagtail's sidebar and buttons carry white text: a light brand colour would fail
        # contrast there, so the admin keeps Wagtail's own colours.
        return ""
    hue, saturation, lightness = hsl_parts(brand.primary)
    return format_html(
        "<style>:root{{--w-color-primary-hue:{};--w-color-primary-saturation:{}%;"
        "--w-color-primary-lightness:{}%;--w-color-secondary-hue:{};"
        "--w-color-secondary-saturation:{}%;--w-color-secondary-lightness:{}%;}}</style>",
        hue,
        saturation,
        lightness,
        hue,
        saturation,
        lightness,
    )
