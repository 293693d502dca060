"""What every page needs: its languages and the hub sign-in option.

Branding comes from the per-site ``BrandingSettings`` (Wagtail's settings context processor).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import get_language, get_language_bidi

from tenant_portal.accounts.signals import REPORTS_SESSION_KEY


def portal(request: HttpRequest) -> dict[str, Any]:
    return {
        "portal_languages": settings.LANGUAGES,
        "current_language": get_language(),
        "language_bidi": get_language_bidi(),
        "hub_sign_in": settings.PORTAL.oidc.hub_name if settings.PORTAL.oidc.hub_idp else "",
        "shows_reports": bool(
            hasattr(request, "session") and request.session.get(REPORTS_SESSION_KEY)
        ),
    }
