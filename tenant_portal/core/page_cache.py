"""Whole pages cached for anonymous visitors, and emptied at once by a new generation.

A view opts in with :func:`cache_for_anonymous`. The middleware then serves that URL to the
next anonymous visitor (same host, same language) straight from the cache, before any routing
or query. Every cached page's key carries the current *generation*; anything that changes
what a public page shows (a course published, unpublished or deleted, catalogue records
arriving, the site's branding or competency framework changing) calls
:func:`bump_generation`, and every older page is unreachable from that moment.

The bump runs after the transaction commits, and a request takes its key when it starts: a
request that read the old rows stores its page under the old generation, never the new one.

Anonymous means: no session cookie and no pending messages. Pages are stored only when the
response sets no cookie, so nothing personal (a CSRF token, a session) is ever shared; for
that the middleware sits outside the CSRF and message middleware (it sees their cookies) and
inside the locale middleware (the language is known).

**The key** is the host, the language, the path and only the query parameters the page says
it reads (``keyed_on``: the catalogue's filters and page number; none for a course page). Any
other parameter (``?utm_source=…``, a cache-busting ``?x=<random>``) is left out of the key:
such a request is served the page stored for its own parameters, and when none is stored yet
it is answered by the view and not stored (the page may echo the parameter). Which parameters
a path is keyed on is remembered beside its pages, per generation. A path keeps at most
:data:`MAX_VARIANTS` pages per generation, so random values of a page's own parameters cannot
fill the cache either; beyond that they are served uncached.

A stored page keeps the inline-stylesheet hashes its rendering allowed, so the security
headers (``core.security_headers``, outside this middleware) are the same on a hit.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils.translation import get_language

from tenant_portal.core.security_headers import STYLE_HASHES

GENERATION_KEY = "page-cache:generation"
_REQUEST_GENERATION = "_karmayogi_generation"
_OPTED_IN = "_karmayogi_cache_for_anonymous"
_KEPT_HEADERS = ("Content-Type", "Content-Language", "Vary")
MAX_VARIANTS = 200
MAX_KEYED_LENGTH = 500


# A page that does not say which parameters it reads is keyed on all of them.
_EVERY = ("*",)


def cache_for_anonymous(request: HttpRequest, *, keyed_on: Iterable[str] | None = None) -> None:
    """Let the page cache keep this response for anonymous visitors, keyed on the query
    parameters ``keyed_on`` (every parameter the page reads) and ignoring any other. Without
    ``keyed_on`` every parameter is part of the key (and bounded by :data:`MAX_VARIANTS`)."""
    setattr(request, _OPTED_IN, _EVERY if keyed_on is None else tuple(sorted(set(keyed_on))))


def generation(key: str = GENERATION_KEY) -> str:
    """The current generation under ``key`` (the page cache's by default), made on first use;
    whatever is cached under a generation is forgotten by setting a new one."""
    value = cache.get(key)
    if value is None:
        cache.add(key, uuid.uuid4().hex, timeout=None)
        value = cache.get(key)
    return str(value)


def request_generation(request: HttpRequest) -> str:
    """The generation this request started in, read once: whatever the request keeps under
    it (a page, a route, a rendered fragment, a site's settings) was read after it."""
    value: str | None = getattr(request, _REQUEST_GENERATION, None)
    if value is None:
        value = generation()
        setattr(request, _REQUEST_GENERATION, value)
    return value


def set_generation(key: str = GENERATION_KEY) -> None:
    """A new generation under ``key`` now: what was kept under the old one is forgotten."""
    cache.set(key, uuid.uuid4().hex, timeout=None)


def bump_generation() -> None:
    """Forget every cached page, once the current transaction (if any) has committed."""
    transaction.on_commit(set_generation)


def _anonymous(request: HttpRequest) -> bool:
    return request.method in ("GET", "HEAD") and not (
        settings.SESSION_COOKIE_NAME in request.COOKIES or "messages" in request.COOKIES
    )


def _digest(*parts: str) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _params_key(gen: str, request: HttpRequest) -> str:
    return f"page-cache:{gen}:params:{_digest(request.get_host(), request.path)}"


def _key(gen: str, request: HttpRequest, keyed_on: tuple[str, ...]) -> str:
    """The page's key: its host, language, path and own parameters, in a canonical order."""
    names = sorted(request.GET) if keyed_on == _EVERY else keyed_on
    own = urlencode([(name, value) for name in names for value in request.GET.getlist(name)])
    return f"page-cache:{gen}:{_digest(request.get_host(), get_language(), request.path, own)}"


class AnonymousPageCacheMiddleware:
    """Serve and store opted-in pages for anonymous visitors; see the module docstring."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.timeout = settings.PORTAL.page_cache_seconds

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not self.timeout or not _anonymous(request):
            return self.get_response(request)
        gen = request_generation(request)
        # Without a query string no parameter can matter: no need to ask which ones do.
        keyed_on: tuple[str, ...] | None = (
            cache.get(_params_key(gen, request)) if request.GET else ()
        )
        if keyed_on is not None:
            stored: dict[str, Any] | None = cache.get(_key(gen, request, keyed_on))
            if stored is not None:
                return self._stored(request, stored)
        response = self.get_response(request)
        opted_in: tuple[str, ...] | None = getattr(request, _OPTED_IN, None)
        session = getattr(request, "session", None)
        if (
            opted_in is not None
            and (opted_in == _EVERY or set(request.GET) <= set(opted_in))
            and len(request.META.get("QUERY_STRING", "")) <= MAX_KEYED_LENGTH
            and response.status_code == 200
            and not response.cookies
            and not response.streaming
            and not (session is not None and session.modified)
        ):
            self._store(gen, request, opted_in, response)
        return response

    def _stored(self, request: HttpRequest, stored: dict[str, Any]) -> HttpResponse:
        response = HttpResponse(stored["content"])
        for header, value in stored["headers"].items():
            response[header] = value
        setattr(request, STYLE_HASHES, set(stored.get("styles", ())))
        response["X-Page-Cache"] = "hit"
        return response

    def _store(
        self, gen: str, request: HttpRequest, keyed_on: tuple[str, ...], response: HttpResponse
    ) -> None:
        variants = f"page-cache:{gen}:variants:{_digest(request.get_host(), request.path)}"
        cache.add(variants, 0, self.timeout)
        try:
            if cache.incr(variants) > MAX_VARIANTS:
                return
        except ValueError:  # the counter expired between the two calls: count from here
            cache.set(variants, 1, self.timeout)
        cache.set(_params_key(gen, request), keyed_on, self.timeout)
        headers = {h: response[h] for h in _KEPT_HEADERS if response.has_header(h)}
        stored = {
            "content": response.content,
            "headers": headers,
            "styles": sorted(getattr(request, STYLE_HASHES, ())),
        }
        cache.set(_key(gen, request, keyed_on), stored, self.timeout)
        response["X-Page-Cache"] = "miss"
