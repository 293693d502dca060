"""What every page looks up about its site, remembered in each worker until the next generation.

A signed-in page is never cached whole (``core.page_cache``), so without this each one asked
the database again for the same few rows: the ``Site`` for the host, its branding, the locales,
and whether any page has a view restriction. They change only when an editor or ``sync_site``
changes them, and every such change moves the page cache's generation (:func:`bump_generation`,
which the receivers below call for the rows the portal does not write itself). Each worker
keeps what it read under the generation its request started in, so a change shows at the next
request of every worker, as on the anonymous page cache.

Rows handed to a request are copies: requests never share a model instance, which Wagtail
and Django annotate per request (``site_settings._request``, a related-object cache).
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.contrib.contenttypes.models import ContentType
from django.db.models import QuerySet
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest
from django.http.request import split_domain_port
from wagtail.models import Locale, Page, PageViewRestriction, Site

from tenant_portal.core.page_cache import bump_generation, generation, request_generation

T = TypeVar("T")

# Generations kept at once: the current one, and the one requests that started just before a
# change still read. Entries per generation are bounded too (hosts come from requests).
KEPT_GENERATIONS = 2
MAX_ENTRIES = 500

_lock = threading.Lock()
_memory: OrderedDict[str, dict[tuple[Any, ...], Any]] = OrderedDict()
_MISSING = object()


def remembered(gen: str, key: tuple[Any, ...], load: Callable[[], T]) -> T:
    """``load()``'s value, read once per worker and generation ``gen``."""
    with _lock:
        found = _memory.get(gen, {}).get(key, _MISSING)
    if found is not _MISSING:
        return cast(T, found)
    value = load()
    with _lock:
        entries = _memory.setdefault(gen, {})
        _memory.move_to_end(gen)
        while len(_memory) > KEPT_GENERATIONS:
            _memory.popitem(last=False)
        if len(entries) < MAX_ENTRIES:
            entries[key] = value
    return value


def forget() -> None:
    """Empty this worker's memory (tests)."""
    with _lock:
        _memory.clear()


def site_for(request: HttpRequest) -> Site | None:
    """The request's ``Site``, as ``Site.find_for_request`` finds it, set on the request for
    Wagtail's own lookups (``request._wagtail_site``)."""
    if hasattr(request, "_wagtail_site"):
        site: Site | None = request._wagtail_site
        return site
    hostname = split_domain_port(request._get_raw_host())[0]  # type: ignore[attr-defined]
    port = request.get_port()
    found = remembered(
        request_generation(request),
        ("site", hostname, port),
        lambda: Site._find_for_request(request),
    )
    site = copy.copy(found) if found is not None else None
    request._wagtail_site = site  # type: ignore[attr-defined]
    return site


def site_setting(request: HttpRequest, model: type[T], load: Callable[[Site], T]) -> T:
    """A per-site setting of the request's site (a copy of the remembered row)."""
    site = site_for(request)
    if site is None:
        raise model.DoesNotExist(f"{model.__name__}: no site answers this request")  # type: ignore[attr-defined]
    key = ("setting", model.__name__, site.pk)
    return copy.copy(remembered(request_generation(request), key, lambda: load(site)))


def live_page(request: HttpRequest, page_id: int, content_type_id: int) -> Page | None:
    """The page ``page_id`` as it is served (its specific model), read once per worker and
    generation; each request gets a copy. What a page serves changes only when it is
    published, unpublished, moved or deleted, and each of those moves the generation. Code
    that reads a page's stream content reads the page afresh (``catalogue.rendering``): copies
    share the lazily decoded stream."""

    def load() -> Page | None:
        model: Any = ContentType.objects.get_for_id(content_type_id).model_class()
        return model.objects.filter(pk=page_id).first() if model else None

    found = remembered(request_generation(request), ("page", page_id), load)
    return copy.copy(found) if found is not None else None


def locale_id(request: HttpRequest, language: str) -> int | None:
    """The id of the ``Locale`` of ``language`` (Wagtail's content-language variant), or
    None when the portal has none."""

    def load() -> int | None:
        try:
            return int(Locale.objects.get_for_language(language).pk)
        except (Locale.DoesNotExist, LookupError):
            return None

    return remembered(request_generation(request), ("locale", language), load)


def any_view_restrictions() -> bool:
    """Whether any page has a view restriction: while none has, serving a page need not look
    for one along its ancestors."""

    def load() -> bool:
        return bool(PageViewRestriction.objects.exists())

    return remembered(generation(), ("view-restrictions",), load)


class RestrictionsRemembered:
    """A page mixin (before ``Page``): serving the page looks for view restrictions along its
    ancestors (two queries in Wagtail) only while some page has one."""

    def get_view_restrictions(self) -> QuerySet[PageViewRestriction]:
        if not any_view_restrictions():
            none: QuerySet[PageViewRestriction] = PageViewRestriction.objects.none()
            return none
        found: QuerySet[PageViewRestriction] = super().get_view_restrictions()  # type: ignore[misc]
        return found


# Rows the portal's own code does not write, but editors do in Wagtail's admin: each change
# moves the generation, for these memories and for the anonymous page cache alike.
@receiver(post_save, sender=Site)
@receiver(post_delete, sender=Site)
@receiver(post_save, sender=Locale)
@receiver(post_delete, sender=Locale)
@receiver(post_save, sender=PageViewRestriction)
@receiver(post_delete, sender=PageViewRestriction)
def site_changed(sender: Any, **kwargs: Any) -> None:
    bump_generation()
