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
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils.translation import get_language

GENERATION_KEY = "page-cache:generation"
_OPTED_IN = "_karmayogi_cache_for_anonymous"
_KEPT_HEADERS = ("Content-Type", "Content-Language", "Vary")


def cache_for_anonymous(request: HttpRequest) -> None:
    """Let the page cache keep this response for anonymous visitors."""
    setattr(request, _OPTED_IN, True)


def generation() -> str:
    value = cache.get(GENERATION_KEY)
    if value is None:
        cache.add(GENERATION_KEY, uuid.uuid4().hex, timeout=None)
        value = cache.get(GENERATION_KEY)
    return str(value)


def bump_generation() -> None:
    """Forget every cached page, once the current transaction (if any) has committed."""
    transaction.on_commit(lambda: cache.set(GENERATION_KEY, uuid.uuid4().hex, timeout=None))


def _anonymous(request: HttpRequest) -> bool:
    return request.method in ("GET", "HEAD") and not (
        settings.SESSION_COOKIE_NAME in request.COOKIES or "messages" in request.COOKIES
    )


def _key(request: HttpRequest) -> str:
    path = f"{request.get_host()}|{get_language()}|{request.get_full_path()}"
    digest = hashlib.sha256(path.encode()).hexdigest()
    return f"page-cache:{generation()}:{digest}"


class AnonymousPageCacheMiddleware:
    """Serve and store opted-in pages for anonymous visitors; see the module docstring."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.timeout = settings.PORTAL.page_cache_seconds

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not self.timeout or not _anonymous(request):
            return self.get_response(request)
        key = _key(request)
        stored: dict[str, Any] | None = cache.get(key)
        if stored is not None:
            response = HttpResponse(stored["content"])
            for header, value in stored["headers"].items():
                response[header] = value
            response["X-Page-Cache"] = "hit"
            return response
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if (
            getattr(request, _OPTED_IN, False)
            and response.status_code == 200
            and not response.cookies
            and not response.streaming
            and not (session is not None and session.modified)
        ):
            self._store(key, response)
        return response

    def _store(self, key: str, response: HttpResponse) -> None:
        headers = {h: response[h] for h in _KEPT_HEADERS if response.has_header(h)}
        cache.set(key, {"content": response.content, "headers": headers}, self.timeout)
        response["X-Page-Cache"] = "miss"
