"""Wagtail's page serving, with the path → page lookup remembered.

Wagtail finds the page for a URL by walking the tree one query per path segment, on every
request; for signed-in visitors (whose pages are never cached whole) that was about half the
cost of a course page. This view remembers, per site and path, which page answered, and on the
next request takes that page from the worker's memory (``core.site_cache.live_page``, read once
per generation) and lets it route what is left of the path itself (a routable page's
sub-routes). Everything else is Wagtail's own ``serve``: its hooks, and so its view-restriction
checks, run as before.

The memory is keyed by the page cache's generation, which any publish, unpublish, move or
delete replaces, so a moved or withdrawn page is never served from it. The site itself comes
from each worker's memory of the same generation (``core.site_cache``).
"""

from __future__ import annotations

import hashlib

from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from wagtail.views import serve as wagtail_serve

from tenant_portal.core.page_cache import request_generation
from tenant_portal.core.site_cache import live_page, site_for

ROUTE_SECONDS = 3600


def serve(request: HttpRequest, path: str) -> HttpResponse:
    site = site_for(request)
    if site is None:
        raise Http404
    components = [part for part in path.split("/") if part]
    # A digest of the whole path: any cache backend takes it (memcached refuses keys over 250
    # characters), and two long paths never share an entry.
    digest = hashlib.sha256("/".join(components).encode("utf-8", "surrogatepass")).hexdigest()
    key = f"route:{request_generation(request)}:{site.pk}:{digest}"
    known: tuple[int, int, int] | None = cache.get(key)
    if known is not None:
        page_id, content_type_id, consumed = known
        page = live_page(request, page_id, content_type_id)
        if page is not None:
            try:
                request._wagtail_route_for_request = page.route(  # type: ignore[attr-defined]
                    request, components[consumed:]
                )
            except Http404:
                request._wagtail_route_for_request = None  # type: ignore[attr-defined]
    response: HttpResponse = wagtail_serve(request, path)
    routed = getattr(request, "_wagtail_route_for_request", None)
    if known is None and routed is not None and response.status_code == 200:
        page = routed[0]
        consumed = page.depth - site.root_page.depth
        cache.set(key, (page.pk, page.content_type_id, consumed), ROUTE_SECONDS)
    return response
