"""The same security headers on every response, a page served from the page cache included.

One middleware sets them, placed outside the anonymous page cache (``core.page_cache``), so a
cache hit passes through it like any other response:

- ``Content-Security-Policy``: only this origin's scripts and stylesheets; no inline script
  anywhere on the portal; the one inline stylesheet (the site's brand colours, which differ per
  site) is allowed by its hash, recorded when the template renders it (:func:`allow_style`)
  and kept with a cached page. Frames only for the video hosts lessons embed; nothing may frame
  the portal; forms post to the portal itself, and to the realm's issuer because sign-out
  posts here and is redirected there (Chromium applies ``form-action`` to the redirect).
- ``Permissions-Policy``: the powerful features a learning portal never uses are off.
- ``X-Frame-Options`` comes from Django's own clickjacking middleware, placed beside this one
  outside the page cache (``settings/base.py``).

It also keeps a personal response out of shared caches: a response a view marked ``public``
that went to a signed-in visitor, carries a CSRF token or sets a cookie is made
``private, no-store``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.cache import patch_cache_control

from tenant_portal.settings.contract import Media

STYLE_HASHES = "_karmayogi_csp_style_hashes"
VIDEO_ORIGINS = ("https://www.youtube-nocookie.com", "https://player.vimeo.com")
_OFF = (
    "accelerometer",
    "ambient-light-sensor",
    "autoplay",
    "bluetooth",
    "camera",
    "display-capture",
    "geolocation",
    "gyroscope",
    "hid",
    "idle-detection",
    "magnetometer",
    "microphone",
    "midi",
    "payment",
    "screen-wake-lock",
    "serial",
    "usb",
    "xr-spatial-tracking",
)
# The embedded players need these (their iframes ask for them with ``allow``).
_PLAYERS = " ".join(f'"{origin}"' for origin in VIDEO_ORIGINS)
PERMISSIONS_POLICY = ", ".join(
    [f"{feature}=()" for feature in _OFF]
    + [f"{feature}=(self {_PLAYERS})" for feature in ("encrypted-media", "fullscreen")]
    + [f"picture-in-picture=(self {_PLAYERS})"]
)


def style_hash(css: str) -> str:
    """The CSP source that allows an inline ``<style>`` whose text is exactly ``css``."""
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    return f"'sha256-{digest}'"


def allow_style(request: HttpRequest | None, css: str) -> None:
    """Allow this inline stylesheet on the response to ``request``."""
    if request is not None:
        hashes: set[str] = getattr(request, STYLE_HASHES, set())
        hashes.add(style_hash(css))
        setattr(request, STYLE_HASHES, hashes)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def media_origins(media: Media) -> list[str]:
    """Where uploaded images and documents are served from, besides the portal itself."""
    if media.s3 is None:
        return []
    if media.s3.endpoint_url:
        origin = _origin(media.s3.endpoint_url)
        host = urlsplit(media.s3.endpoint_url).netloc
        return [origin, f"{urlsplit(origin).scheme}://{media.s3.bucket}.{host}"]
    regional = f"s3.{media.s3.region}.amazonaws.com" if media.s3.region else "s3.amazonaws.com"
    return [f"https://{media.s3.bucket}.{regional}", f"https://{media.s3.bucket}.s3.amazonaws.com"]


def content_security_policy(*, admin: bool, style_hashes: Iterable[str] = ()) -> str:
    media = " ".join(media_origins(settings.PORTAL.media))
    issuer = _origin(settings.PORTAL.oidc.issuer)
    if admin:
        # Wagtail's admin writes inline scripts and style attributes throughout (its page
        # editor, choosers, Draftail) and frames its own previews: it gets 'unsafe-inline' and
        # may be framed by itself; its embed previews frame any provider. It is only for
        # signed-in editors; the public portal never gets this policy.
        script, style, ancestors = "'self' 'unsafe-inline'", "'self' 'unsafe-inline'", "'self'"
        frames = "'self' https:"
    else:
        script, ancestors = "'self'", "'none'"
        style = " ".join(["'self'", *sorted(style_hashes)])
        frames = " ".join(["'self'", *VIDEO_ORIGINS])
    directives = {
        "default-src": "'self'",
        "script-src": script,
        "style-src": style,
        "img-src": f"'self' data: blob: {media}",
        "media-src": f"'self' https: {media}",
        "font-src": "'self' data:",
        "connect-src": "'self'",
        "frame-src": frames,
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": f"'self' {issuer}",
        "frame-ancestors": ancestors,
    }
    return "; ".join(" ".join(f"{k} {v}".split()) for k, v in directives.items())


def _personal(request: HttpRequest, response: HttpResponse) -> bool:
    user = getattr(request, "user", None)
    return bool(
        response.cookies
        or request.META.get("CSRF_COOKIE_USED")
        or (user is not None and user.is_authenticated)
    )


class SecurityHeadersMiddleware:
    """Set the module's headers on every response; see the module docstring."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.admin_prefix = ""

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not self.admin_prefix:
            self.admin_prefix = reverse("wagtailadmin_home")
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = content_security_policy(
                admin=request.path.startswith(self.admin_prefix),
                style_hashes=getattr(request, STYLE_HASHES, ()),
            )
        response.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        if "public" in response.get("Cache-Control", "") and _personal(request, response):
            del response["Cache-Control"]
            patch_cache_control(response, private=True, no_store=True)
        return response
