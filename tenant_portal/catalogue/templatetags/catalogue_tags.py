"""Small filters for catalogue and course templates."""

from __future__ import annotations

from typing import Any

from django import template
from django.conf import settings
from django.conf.locale import LANG_INFO
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from tenant_portal.competencies.models import localized as _localized

register = template.Library()


@register.filter
def localized(value: dict[str, str] | None) -> str:
    """A language map's text in the active language."""
    return _localized(value) if value else ""


@register.filter
def duration(minutes: int) -> str:
    hours, rest = divmod(int(minutes or 0), 60)
    if hours and rest:
        return _("%(h)d h %(m)d min") % {"h": hours, "m": rest}
    if hours:
        return _("%(h)d h") % {"h": hours}
    return _("%(m)d min") % {"m": rest}


@register.filter
def language_names(codes: list[str]) -> str:
    return ", ".join(LANG_INFO.get(code, {}).get("name_local", code) for code in codes or [])


@register.filter
def origin_label(entry: Any) -> str:
    """The instance a course comes from, by its name in the federation's settings (the
    tenant's display name), else in the federation's members (a member from another
    deployment), else by the name its record carried."""
    names = settings.PORTAL.federation.names
    if entry.origin in names:
        return str(names[entry.origin])
    from tenant_portal.federation.membership import member_name

    return str(member_name(entry.origin) or entry.origin_name)


@register.filter
def origin_shown(entry: Any) -> str:
    """The origin's name on a course's record page: as :func:`origin_label`, except that a
    name which is only the provider's plain name (a record names its origin so) shows in the
    reader's language from the provider's map (issue 19)."""
    origin = origin_label(entry)
    return str(entry.provider_label) if origin == entry.provider else origin


@register.filter
def course_url(entry: Any, catalogue: Any) -> str:
    """Where the catalogue links a course: its page here, else its record page."""
    if entry.page_id is not None:
        return str(entry.url)
    return f"{catalogue.url}{entry.uuid}/"


@register.simple_tag
def course_jsonld(entry: Any) -> str:
    """``<script type="application/ld+json">`` with the course's record v1 (schema.org)."""
    if entry is None:
        return ""
    from tenant_portal.federation.records import jsonld

    return format_html('<script type="application/ld+json">{}</script>', mark_safe(jsonld(entry)))
