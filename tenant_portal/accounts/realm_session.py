"""The realm session behind a portal session: kept at sign-in, re-checked at Keycloak later.

At sign-in the portal keeps the realm's refresh token in the (server-side) session store,
encrypted with a key derived from ``SECRET_KEY`` so a copy of the sessions table does not
hand out working tokens, and caps the portal session at the refresh token's lifetime
(``refresh_expires_in``: Keycloak gives the shorter of the realm's SSO session idle timeout
and what is left of its SSO session max). A re-check is a refresh-token grant at the realm's
token endpoint, which fails once the realm session is gone (expired, deleted, user disabled),
followed by userinfo for the roles, department and names as they are now.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest
from django.utils.crypto import salted_hmac
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

REALM_SESSION_KEY = "karmayogi_realm_session"
# Set on the request by the backend at the code exchange and read when the user is logged in:
# the session may be flushed in between (django.contrib.auth.login), the request is not.
TOKENS_ATTRIBUTE = "karmayogi_realm_tokens"
TIMEOUT_SECONDS = 5.0
# After Keycloak could not be reached, how soon a plain page asks again.
RETRY_SECONDS = 30
_JWE_HEADER = {"alg": "dir", "enc": "A256GCM"}
_JWE_ALGORITHMS = ["dir", "A256GCM"]


class RealmSessionError(Exception):
    """The realm's answer cannot be used; the message says why (never a token)."""


class RealmSessionEnded(RealmSessionError):
    """The realm no longer knows the session: expired, ended, or the user is disabled."""


class RealmUnreachable(RealmSessionError):
    """Keycloak did not answer usably (network, timeout, 5xx): nothing is known either way."""


@dataclass(frozen=True)
class Tokens:
    """What a token response carries that the portal keeps."""

    access_token: str
    refresh_token: str
    refresh_expires_in: int
    id_token: str
    # When the request was sent: Keycloak started counting no earlier, so an expiry counted
    # from here is never later than the realm's.
    requested_at: float

    @property
    def expires_at(self) -> datetime:
        # Keycloak counts in whole seconds, its "now" rounded down: so is ours.
        start = math.floor(self.requested_at)
        return datetime.fromtimestamp(start + self.refresh_expires_in, tz=UTC)


def tokens_from_response(data: Mapping[str, Any], *, requested_at: float) -> Tokens:
    """The tokens of a token-endpoint answer, or :class:`RealmSessionError`."""
    access, refresh = data.get("access_token"), data.get("refresh_token")
    lifetime = data.get("refresh_expires_in")
    if not isinstance(access, str) or not isinstance(refresh, str) or not refresh:
        raise RealmSessionError("the realm's token response has no refresh token")
    # 0 would be an offline token, which outlives the realm session: never asked for.
    if not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime <= 0:
        raise RealmSessionError("the realm's refresh token has no lifetime")
    id_token = data.get("id_token")
    return Tokens(
        access_token=access,
        refresh_token=refresh,
        refresh_expires_in=lifetime,
        id_token=id_token if isinstance(id_token, str) else "",
        requested_at=requested_at,
    )


def tokens_of(request: HttpRequest) -> Tokens | None:
    """The tokens the backend received for this request's sign-in, if any."""
    tokens = getattr(request, TOKENS_ATTRIBUTE, None)
    return tokens if isinstance(tokens, Tokens) else None


def is_bound(session: SessionBase) -> bool:
    """Whether the session was opened through the realm and can be re-checked."""
    return isinstance(session.get(REALM_SESSION_KEY), dict)


def remember(session: SessionBase, tokens: Tokens, *, now: float) -> None:
    """Keep the refresh token, note the time of this check, and end the portal session no
    later than the realm session."""
    session[REALM_SESSION_KEY] = {"refresh": _encrypt(tokens.refresh_token), "checked": now}
    session.set_expiry(tokens.expires_at)
    if tokens.id_token:
        session["oidc_id_token"] = tokens.id_token  # the freshest hint for end-session


def is_due(session: SessionBase, *, now: float, interval: int) -> bool:
    """Whether the interval has passed since the last check (and any retry delay)."""
    state = session.get(REALM_SESSION_KEY) or {}
    checked, retry = state.get("checked"), state.get("retry", 0)
    if not isinstance(checked, int | float) or not isinstance(retry, int | float):
        return True
    return now >= checked + interval and now >= retry


def defer(session: SessionBase, *, now: float, interval: int) -> None:
    """Ask again soon, not at every request, after Keycloak could not be reached."""
    state = dict(session.get(REALM_SESSION_KEY) or {})
    state["retry"] = now + min(RETRY_SECONDS, interval)
    session[REALM_SESSION_KEY] = state


def refresh(session: SessionBase) -> tuple[Tokens, dict[str, Any]]:
    """New tokens and the user's claims as the realm has them now.

    :raises RealmSessionEnded: the realm refused the refresh token (or the session holds none
        this portal can read).
    :raises RealmUnreachable: no usable answer.
    """
    state = session.get(REALM_SESSION_KEY) or {}
    refresh_token = _decrypt(str(state.get("refresh", "")))
    requested_at = time.time()
    try:
        response = httpx.post(
            settings.OIDC_OP_TOKEN_ENDPOINT,
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": settings.OIDC_RP_CLIENT_ID,
                "client_secret": settings.OIDC_RP_CLIENT_SECRET,
            },
            timeout=TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as exc:
        raise RealmUnreachable(f"token endpoint: {exc.__class__.__name__}") from None
    # RFC 6749 §5.2: a refused grant or client is 400 or 401; anything else says nothing.
    if response.status_code in (400, 401):
        raise RealmSessionEnded(f"refresh refused: {_oauth_error(response)}")
    if response.status_code != 200:
        raise RealmUnreachable(f"token endpoint answered {response.status_code}")
    try:
        tokens = tokens_from_response(response.json(), requested_at=requested_at)
    except (ValueError, RealmSessionError) as exc:
        raise RealmUnreachable(f"token endpoint: {exc}") from None
    try:
        userinfo = httpx.get(
            settings.OIDC_OP_USER_ENDPOINT,
            headers={"Authorization": f"Bearer {tokens.access_token}"},
            timeout=TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as exc:
        raise RealmUnreachable(f"userinfo: {exc.__class__.__name__}") from None
    if userinfo.status_code in (401, 403):
        raise RealmSessionEnded(f"userinfo refused the new token ({userinfo.status_code})")
    if userinfo.status_code != 200:
        raise RealmUnreachable(f"userinfo answered {userinfo.status_code}")
    try:
        claims = userinfo.json()
    except ValueError:
        raise RealmUnreachable("userinfo is not JSON") from None
    if not isinstance(claims, dict):
        raise RealmUnreachable("userinfo is not a JSON object")
    return tokens, claims


def _oauth_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"status {response.status_code}"
    return str(body.get("error", response.status_code)) if isinstance(body, dict) else "?"


def _key() -> OctKey:
    # A 256-bit key of its own, derived from SECRET_KEY: rotating the secret key ends every
    # realm-bound session at its next re-check, as it ends every session anyway.
    raw = salted_hmac(
        "tenant_portal.accounts.realm_session", "refresh-token", algorithm="sha256"
    ).digest()
    return OctKey.import_key(raw)


def _encrypt(token: str) -> str:
    return jwe.encrypt_compact(_JWE_HEADER, token, _key(), algorithms=_JWE_ALGORITHMS)


def _decrypt(value: str) -> str:
    try:
        plaintext = jwe.decrypt_compact(value, _key(), algorithms=_JWE_ALGORITHMS).plaintext
    except (JoseError, ValueError):
        raise RealmSessionEnded("the session's refresh token cannot be read") from None
    return (plaintext or b"").decode()
