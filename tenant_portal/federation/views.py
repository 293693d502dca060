"""``/federation/v1/changes`` (the feed, for federation clients of the hub realm),
``/federation/v1/keys`` (public keys, for anyone who must check a record) and, on the hub,
``/federation/v1/members`` (the signed member directory, public: it holds no secret)."""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from tenant_portal.federation.auth import Unauthorized, caller
from tenant_portal.federation.changes import MAX_PAGE, feed_page
from tenant_portal.federation.membership import signed_directory
from tenant_portal.federation.signing import published_keys

log = logging.getLogger(__name__)


def _error(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="karmayogi-federation"'
    return response


def _int(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    if not value.isdigit() or len(value) > 18:
        raise ValueError(f"{name} must be a whole number from {low} to {high}")
    number = int(value)
    if not low <= number <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}")
    return number


@never_cache
@require_GET
def changes(request: HttpRequest) -> HttpResponse:
    try:
        peer = caller(request)
    except Unauthorized as exc:
        return _error(401, str(exc))
    try:
        after = _int(request.GET.get("after"), "after", 0, 0, 2**62)
        limit = _int(request.GET.get("limit"), "limit", 100, 1, MAX_PAGE)
    except ValueError as exc:
        return _error(400, str(exc))
    page = feed_page(after, limit)
    digest = hashlib.sha256(
        f"{after}|{[c['position'] for c in page.changes]}|{page.last}".encode()
    ).hexdigest()[:32]
    etag = f'"{digest}"'
    if etag in request.headers.get("If-None-Match", ""):
        response = HttpResponse(status=304)
    else:
        response = JsonResponse(page.as_json)
    response["ETag"] = etag
    log.info("feed: %s read %d change(s) after %d", peer, len(page.changes), after)
    return response


@require_GET
def keys(request: HttpRequest) -> HttpResponse:
    response = JsonResponse(published_keys())
    response["Cache-Control"] = "public, max-age=300"
    return response


@require_GET
def members(request: HttpRequest) -> HttpResponse:
    if not settings.PORTAL.federation.is_hub:
        return _error(404, "this instance is not the federation's hub")
    response = HttpResponse(signed_directory(), content_type="application/jose")
    response["Cache-Control"] = "public, max-age=30"
    return response
