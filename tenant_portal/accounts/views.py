"""Sign-in, sign-out and Keycloak's back-channel logout."""

from __future__ import annotations

import logging
from importlib import import_module
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import get_language
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from tenant_portal.accounts.logout_token import LogoutTokenError, validate_logout_token
from tenant_portal.accounts.models import KeycloakSession
from tenant_portal.accounts.realm_session import RealmSessionError

logger = logging.getLogger(__name__)


class AuthenticateView(OIDCAuthenticationRequestView):
    """Start the code flow; Keycloak's pages follow the portal's language (``ui_locales``).

    ``?idp=hub`` skips the realm's own form and goes straight to the hub's (``kc_idp_hint``).
    """

    def get(self, request: HttpRequest) -> HttpResponse:
        # A signed-in user is sent here by a page that needs rights they lack (Wagtail's
        # admin for a learner): signing in again would only come back here, in a loop.
        if request.user.is_authenticated:
            return render(request, "accounts/no_access.html", status=403)
        response: HttpResponse = super().get(request)
        return response

    def get_extra_params(self, request: HttpRequest) -> dict[str, str]:
        params = {"ui_locales": get_language() or settings.LANGUAGE_CODE}
        if request.GET.get("idp") == "hub" and settings.PORTAL.oidc.hub_idp:
            params["kc_idp_hint"] = settings.PORTAL.oidc.hub_idp
        return params


class CallbackView(OIDCAuthenticationCallbackView):
    """The code flow's return; a bad state, nonce or code lands on a clear error page."""

    def get(self, request: HttpRequest) -> HttpResponse:
        try:
            response: HttpResponse = super().get(request)
        except SuspiciousOperation as exc:  # state or nonce not ours: forged or replayed
            logger.warning("sign-in refused at the OIDC callback: %s", exc)
            return render(request, "accounts/sign_in_failed.html", status=400)
        except requests.RequestException as exc:
            # Keycloak refused the code (forged, expired, used, another flow's) or could not
            # be reached: the state was ours, the sign-in is not. No trace for the visitor.
            if exc.response is not None:
                said = f"Keycloak answered {exc.response.status_code}"
            else:  # e.g. a certificate the host does not trust: the operator must see which
                said = f"Keycloak could not be reached ({type(exc).__name__}: {exc})"
            logger.warning("sign-in failed at the OIDC callback: %s", said)
            return render(request, "accounts/sign_in_failed.html", status=400)
        except (RealmSessionError, PermissionError) as exc:
            logger.warning("sign-in refused at the OIDC callback: %s", exc)
            return render(request, "accounts/sign_in_failed.html", status=400)
        return response

    def login_failure(self) -> HttpResponse:
        logger.warning(
            "sign-in failed at the OIDC callback: %s",
            self.request.GET.get("error", "invalid state, nonce or code"),
        )
        return render(self.request, "accounts/sign_in_failed.html", status=400)


def keycloak_logout_url(request: HttpRequest) -> str:
    """Keycloak's end-session URL, so signing out of the portal ends the realm session too."""
    params = {
        "client_id": settings.OIDC_RP_CLIENT_ID,
        "post_logout_redirect_uri": f"{settings.PORTAL.portal_url}/",
    }
    id_token = request.session.get("oidc_id_token")
    if id_token:
        params["id_token_hint"] = id_token
    return f"{settings.OIDC_OP_END_SESSION_ENDPOINT}?{urlencode(params)}"


@csrf_exempt  # Keycloak posts server to server; the signed token is the proof.
@require_POST
@transaction.atomic
def backchannel_logout(request: HttpRequest) -> HttpResponse:
    """End the portal sessions of the Keycloak session (or user) named by the logout token."""
    token = request.POST.get("logout_token", "")
    if not token:
        return HttpResponse("logout_token is missing", status=400, content_type="text/plain")
    try:
        ended = validate_logout_token(
            token,
            issuer=settings.PORTAL.oidc.issuer,
            client_id=settings.OIDC_RP_CLIENT_ID,
            jwks_url=settings.OIDC_OP_JWKS_ENDPOINT,
        )
    except LogoutTokenError as exc:
        logger.warning("back-channel logout refused: %s", exc)
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    sessions = KeycloakSession.objects.all()
    sessions = (
        sessions.filter(sid=ended.sid)
        if ended.sid
        else sessions.filter(user__profile__subject=ended.sub)
    )
    keys = list(sessions.values_list("session_key", flat=True))
    store = import_module(settings.SESSION_ENGINE).SessionStore
    for key in keys:
        store(session_key=key).delete()  # from the session cache too, not only the table
    Session.objects.filter(session_key__in=keys).delete()
    sessions.delete()
    logger.info("back-channel logout ended %d portal session(s)", len(keys))
    response = HttpResponse(status=200)
    response["Cache-Control"] = "no-store"
    return response


def sign_in_failed(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/sign_in_failed.html", status=400)
