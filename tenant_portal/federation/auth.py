"""Who is calling the feed: a client-credentials token of the hub realm, and nothing else.

The hub realm is the federation's directory (DESIGN §6): every instance has a
``federation-<code>`` client there. A token is accepted when the hub realm signed it (its
JWKS), its issuer is the hub realm, it has not expired, and it was issued to a
``federation-`` client; the caller is known by ``azp``. A token of any other realm fails the
signature or the issuer check. On the hub the caller must also be an active member of the
federation (:mod:`tenant_portal.federation.membership`). The hub realm's keys are held by
:mod:`tenant_portal.core.jwks`: a token naming an unknown key makes the portal fetch them
again at most once a minute.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from joserfc import jws, jwt
from joserfc.errors import JoseError

from tenant_portal.core import jwks

CLIENT_PREFIX = "federation-"
ALGORITHMS = ["RS256", "ES256", "PS256"]
MAX_TOKEN = 8192  # Keycloak's client-credentials tokens are about 1.5 KB


class Unauthorized(Exception):
    """The request carries no acceptable token; the message says why (no token content)."""


def hub_issuer() -> str:
    issuer = settings.PORTAL.federation.hub_issuer
    if not issuer:
        raise Unauthorized("this instance has no hub realm configured")
    return issuer


def caller(request: HttpRequest) -> str:
    """The calling instance's code, from its bearer token; :class:`Unauthorized` otherwise."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer token of the hub realm is required")
    token = token.strip()
    if len(token) > MAX_TOKEN:
        raise Unauthorized("the bearer token is not a JWT")
    try:
        kid = jws.extract_compact(token.encode()).protected.get("kid")
    except (JoseError, ValueError, TypeError, KeyError):
        raise Unauthorized("the bearer token is not a JWT") from None
    if kid is not None and not isinstance(kid, str):
        raise Unauthorized("the bearer token is not a JWT")
    url = f"{hub_issuer()}/protocol/openid-connect/certs"
    try:
        # An unknown kid fetches the keys again at most once a minute (core.jwks); within that
        # minute the token is checked against the keys held, and refused.
        keys = jwks.key_set(url, kid=kid, timeout=10.0)
    except jwks.KeysUnavailable:
        raise Unauthorized("the hub realm's keys cannot be read right now") from None
    try:
        decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": hub_issuer()}, exp={"essential": True}
        ).validate(decoded.claims)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise Unauthorized(
            f"the bearer token is not valid here: {exc.__class__.__name__}"
        ) from None
    azp = decoded.claims.get("azp")
    if not isinstance(azp, str) or not azp.startswith(CLIENT_PREFIX):
        raise Unauthorized("the token was not issued to a federation client")
    code = azp.removeprefix(CLIENT_PREFIX)
    if settings.PORTAL.federation.is_hub:
        # Checked at every call, not once per token: a suspension bites at the next request.
        from tenant_portal.federation.membership import require_member  # it imports this module

        require_member(code)
    return code
