"""``/federation/v1/changes`` (the feed, for federation clients of the hub realm),
``/federation/v1/framework`` (on the hub: its competency framework and posts, signed, under
the feed's token rules),
``/federation/v1/keys`` (public keys, for anyone who must check a record), on the hub
``/federation/v1/members`` (the signed member directory, public: it holds no secret),
``/federation/v1/packages/<course>`` and its ``files/<sha256>`` (content packages, under the
feed's token rules) and ``/learn/files/<sha256>/<name>`` (this instance's own copy of a file
of a course it holds the package of, for its learners)."""

from __future__ import annotations

import hashlib
import logging
import re
import uuid

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from tenant_portal.federation import framework as hub_framework
from tenant_portal.federation.auth import Unauthorized, caller
from tenant_portal.federation.changes import MAX_PAGE, feed_page
from tenant_portal.federation.membership import signed_directory
from tenant_portal.federation.models import HeldFile
from tenant_portal.federation.packages import course_of, signed_package
from tenant_portal.federation.packages import package_file as find_package_file
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


@never_cache
@require_GET
def framework(request: HttpRequest) -> HttpResponse:
    """The hub's competency framework and posts, signed (``federation.framework``)."""
    if not settings.PORTAL.federation.is_hub:
        return _error(404, "this instance is not the federation's hub")
    try:
        peer = caller(request)
    except Unauthorized as exc:
        return _error(401, str(exc))
    found = hub_framework.published()
    if found is None:
        return _error(404, "no competency framework is published here")
    etag, payload = found
    if etag in request.headers.get("If-None-Match", ""):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(hub_framework.sign(payload), content_type="application/jose")
        log.info("framework: %s read the framework document", peer)
    response["ETag"] = etag
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


_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Shown in the browser (a PDF, an image); anything else is downloaded.
_INLINE = ("application/pdf", "image/png", "image/jpeg", "image/webp")


@never_cache
@require_GET
def package(request: HttpRequest, course: uuid.UUID) -> HttpResponse:
    try:
        peer = caller(request)
    except Unauthorized as exc:
        return _error(401, str(exc))
    entry = course_of(course)
    token = signed_package(entry) if entry is not None else None
    if token is None:
        return _error(404, "no content package of this course is served here")
    log.info("packages: %s read the package of %s", peer, course)
    return HttpResponse(token, content_type="application/jose")


@never_cache
@require_GET
def package_file(
    request: HttpRequest, course: uuid.UUID, sha256: str
) -> HttpResponse | FileResponse:
    try:
        caller(request)
    except Unauthorized as exc:
        return _error(401, str(exc))
    entry = course_of(course)
    found = find_package_file(entry, sha256) if entry and _SHA256.match(sha256) else None
    if found is None:
        return _error(404, "the package of this course lists no such file")
    handle, media_type, size = found
    response = FileResponse(handle, content_type=media_type)
    response["Content-Length"] = str(size)
    return response


@require_GET
def course_file(request: HttpRequest, sha256: str, name: str) -> HttpResponse | FileResponse:
    """A file of a course learned here from its package, from this instance's own copy."""
    found = HeldFile.objects.filter(sha256=sha256).first() if _SHA256.match(sha256) else None
    if found is None:  # only files of packages that passed every check are held
        return _error(404, "no such file")
    inline = found.media_type in _INLINE
    response = FileResponse(
        found.file.open("rb"),
        content_type=found.media_type,
        as_attachment=not inline,
        filename=re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "download",
    )
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["Cache-Control"] = "public, max-age=86400, immutable"
    return response
