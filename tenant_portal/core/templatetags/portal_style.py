"""``{% brand_style brand %}``: the site's brand colours as the one inline stylesheet a public
page has, allowed by the Content-Security-Policy through its hash (core.security_headers)."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString

from tenant_portal.core.security_headers import allow_style

register = template.Library()

_VARIABLES = {
    "--brand-primary": "primary",
    "--brand-on-primary": "on_primary",
    "--brand-accent": "accent",
    "--brand-on-accent": "on_accent",
    "--brand-link": "link",
}


@register.simple_tag(takes_context=True)
def brand_style(context: dict[str, Any], brand: Any) -> SafeString:
    # The colours are validated hex colours (branding.models.hex_colour); escaped all the same.
    variables = "".join(
        f"{name}:{getattr(brand, field, '')};" for name, field in _VARIABLES.items()
    )
    css = conditional_escape(f":root{{{variables}}}")
    # The hash is of the text the browser sees, so of the escaped text.
    allow_style(context.get("request"), css)
    return format_html("<style>{}</style>", css)
