"""Validation of Keycloak's back-channel logout token (OpenID Connect Back-Channel Logout 1.0).

No OIDC library for Django receives these (DESIGN §9), so the portal checks the token itself
with joserfc: signature against the realm's JWKS, issuer, audience, the ``events`` claim, no
``nonce``, a ``sid`` or ``sub``, and freshness.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tenant_portal.core import jwks

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
MAX_AGE_SECONDS = 300


class LogoutTokenError(ValueError):
    """The logout token is not one this portal accepts; the message says why."""


@dataclass(frozen=True)
class LogoutRequest:
    sid: str | None
    sub: str | None


def _keys(jwks_url: str, refresh: bool = False) -> KeySet:
    # Fetched again at most once a minute however many tokens fail to verify (core.jwks).
    return jwks.key_set(jwks_url, refresh=refresh, timeout=5.0)


def validate_logout_token(
    token: str, *, issuer: str, client_id: str, jwks_url: str, now: float | None = None
) -> LogoutRequest:
    """The session the token ends, or :class:`LogoutTokenError`."""
    try:
        try:
            decoded = jwt.decode(token, _keys(jwks_url), algorithms=["RS256", "ES256", "PS256"])
        except JoseError:
            # A key rotated since the cache was filled: look once more before refusing.
            decoded = jwt.decode(
                token, _keys(jwks_url, refresh=True), algorithms=["RS256", "ES256", "PS256"]
            )
    except (JoseError, ValueError) as exc:
        raise LogoutTokenError(
            f"logout token signature or format is invalid ({exc.__class__.__name__})"
        ) from None
    except jwks.KeysUnavailable:
        raise LogoutTokenError("the realm's keys could not be fetched") from None
    claims: dict[str, Any] = dict(decoded.claims)
    if claims.get("iss") != issuer:
        raise LogoutTokenError("logout token issuer is not this portal's realm")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else list(audience or [])
    if client_id not in audiences:
        raise LogoutTokenError("logout token is not addressed to this portal")
    events = claims.get("events")
    if not isinstance(events, dict) or BACKCHANNEL_EVENT not in events:
        raise LogoutTokenError("logout token lacks the back-channel logout event")
    if "nonce" in claims:
        raise LogoutTokenError("logout token must not carry a nonce")
    current = time.time() if now is None else now
    issued = claims.get("iat")
    if not isinstance(issued, int | float) or abs(current - issued) > MAX_AGE_SECONDS:
        raise LogoutTokenError("logout token is expired or not yet valid")
    expires = claims.get("exp")
    if isinstance(expires, int | float) and expires < current:
        raise LogoutTokenError("logout token is expired or not yet valid")
    sid, sub = claims.get("sid"), claims.get("sub")
    if not sid and not sub:
        raise LogoutTokenError("logout token names neither a session nor a subject")
    return LogoutRequest(sid=str(sid) if sid else None, sub=str(sub) if sub else None)
