"""The session re-check: a portal session lives no longer, and has no more rights, than the
realm session and roles behind it.

Every ``settings.PORTAL.session_recheck_seconds`` (at most 300), and before every privileged
view, the portal refreshes its token at Keycloak and applies the user's roles, department and
names as the realm has them now. When the realm session is gone the portal session ends: a
privileged request is sent to sign in, a plain page is shown signed out. When Keycloak cannot
be reached a privileged request is refused (403) and a plain page is served as it is, asking
again shortly; the session still ends at the realm session's last known end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import NoReverseMatch, reverse

from tenant_portal.accounts import realm_session
from tenant_portal.accounts.backends import KeycloakBackend
from tenant_portal.accounts.models import KeycloakSession, Profile
from tenant_portal.accounts.signals import (
    ACCESS_ADMIN,
    EDITS_SESSION_KEY,
    REPORTS_SESSION_KEY,
    SID_SESSION_KEY,
)

logger = logging.getLogger(__name__)

# Views gated by roles: the department reports. Everything under Wagtail's admin is too.
PRIVILEGED_ROUTES = frozenset(
    {"my_department_report", "department_report", "department_report_csv", "assign_post"}
)
# Sign-in and sign-out themselves are never held up by a re-check.
EXEMPT_ROUTES = frozenset({"oidc_authentication_callback", "oidc_logout", "backchannel_logout"})
PRIVILEGED_ATTRIBUTE = "karmayogi_privileged"
_PERMISSION_CACHES = ("_perm_cache", "_user_perm_cache", "_group_perm_cache")

View = TypeVar("View", bound=Callable[..., Any])


def privileged(view: View) -> View:
    """Mark a view as privileged: the realm session and roles are re-checked before it runs."""
    setattr(view, PRIVILEGED_ATTRIBUTE, True)
    return view


def is_privileged(request: HttpRequest, view: Callable[..., Any]) -> bool:
    if getattr(view, PRIVILEGED_ATTRIBUTE, False):
        return True
    match = request.resolver_match
    if match is not None and match.url_name in PRIVILEGED_ROUTES:
        return True
    try:
        admin = reverse("wagtailadmin_home")
    except NoReverseMatch:
        return False
    return request.path_info.startswith(admin)


class RealmSessionMiddleware:
    """Re-check the realm session behind a signed-in user's portal session (after
    ``AuthenticationMiddleware``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> HttpResponseBase | None:
        if not request.user.is_authenticated:
            return None
        match = request.resolver_match
        if match is not None and match.url_name in EXEMPT_ROUTES:
            return None
        gated = is_privileged(request, view)
        session = request.session
        if not realm_session.is_bound(session):
            if SID_SESSION_KEY in session or "oidc_id_token" in session:
                # Opened through the realm before the portal kept what a re-check needs.
                logger.info("portal session ended: no realm session to re-check")
                return _end(request, gated)
            # Not opened through the realm at all (a test's force_login, a shell).
            return None
        now = time.time()
        interval = settings.PORTAL.session_recheck_seconds
        if not gated and not realm_session.is_due(session, now=now, interval=interval):
            return None
        try:
            tokens, claims = realm_session.refresh(session)
            _apply(request, claims)
        except realm_session.RealmSessionEnded as exc:
            logger.info("portal session ended with the realm session: %s", exc)
            return _end(request, gated)
        except realm_session.RealmUnreachable as exc:
            if gated:
                logger.warning("privileged request refused, realm session not verified: %s", exc)
                raise PermissionDenied("the realm session could not be verified") from None
            logger.warning("realm session re-check deferred: %s", exc)
            realm_session.defer(session, now=now, interval=interval)
            return None
        realm_session.remember(session, tokens, now=now)
        return None


def _apply(request: HttpRequest, claims: dict[str, Any]) -> None:
    """The user's roles, department and names as the realm has them now."""
    user = cast(User, request.user)
    subject = Profile.objects.filter(user=user).values_list("subject", flat=True).first()
    if not subject or claims.get("sub") != subject:
        raise realm_session.RealmSessionEnded("userinfo answered for another subject")
    KeycloakBackend().update_user(user, claims)
    for name in _PERMISSION_CACHES:  # ModelBackend's, filled before the roles changed
        if hasattr(user, name):
            delattr(user, name)  # through request.user's lazy wrapper, unlike __dict__
    request.session[REPORTS_SESSION_KEY] = user.has_perm("accounts.view_department_reports")
    request.session[EDITS_SESSION_KEY] = user.has_perm(ACCESS_ADMIN)


def _end(request: HttpRequest, gated: bool) -> HttpResponseBase | None:
    key = request.session.session_key
    auth.logout(request)
    if key:
        KeycloakSession.objects.filter(session_key=key).delete()
    if gated:
        return redirect_to_login(request.get_full_path())
    return None
