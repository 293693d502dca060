"""What every page needs: its languages, the hub sign-in option, and the header's links.

Branding comes from the per-site ``BrandingSettings`` (Wagtail's settings context processor).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import get_language, get_language_bidi

from tenant_portal.accounts.signals import ACCESS_ADMIN, EDITS_SESSION_KEY, REPORTS_SESSION_KEY


def shows_userbar(request: HttpRequest) -> bool:
    """Whether the page carries Wagtail's userbar: decided at sign-in and at each session
    re-check (``accounts.signals``), so pages do not ask the database for permissions. A
    session opened otherwise (a shell, a test's ``force_login``) asks."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    decided = request.session.get(EDITS_SESSION_KEY)
    if decided is not None:
        return bool(decided)
    return bool(user.has_perm(ACCESS_ADMIN))


def portal(request: HttpRequest) -> dict[str, Any]:
    return {
        "portal_languages": settings.LANGUAGES,
        "current_language": get_language(),
        "language_bidi": get_language_bidi(),
        "hub_sign_in": settings.PORTAL.oidc.hub_name if settings.PORTAL.oidc.hub_idp else "",
        "shows_userbar": shows_userbar(request),
        "shows_reports": bool(
            hasattr(request, "session") and request.session.get(REPORTS_SESSION_KEY)
        ),
    }
