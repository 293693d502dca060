"""Who is calling the feed: a client-credentials token of the hub realm, and nothing else.

The hub realm is the federation's directory (DESIGN §6): every instance has a
``federation-<code>`` client there. A token is accepted when the hub realm signed it (its
JWKS), its issuer is the hub realm, it has not expired, and it was issued to a
``federation-`` client; the caller is known by ``azp``. A token of any other realm fails the
signature or the issuer check.
"""

from __future__ import annotations

from typing import Any

import httpx
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

JWKS_CACHE_SECONDS = 300
CLIENT_PREFIX = "federation-"


class Unauthorized(Exception):
    """The request carries no acceptable token; the message says why (no token content)."""


def hub_issuer() -> str:
    issuer = settings.PORTAL.federation.hub_issuer
    if not issuer:
        raise Unauthorized("this instance has no hub realm configured")
    return issuer


def _hub_keys(refresh: bool = False) -> KeySet:
    url = f"{hub_issuer()}/protocol/openid-connect/certs"
    data: Any = None if refresh else cache.get(f"federation:hub-jwks:{url}")
    if data is None:
        try:
            response = httpx.get(url, timeout=10.0)
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError):
            raise Unauthorized("the hub realm's keys cannot be read right now") from None
        cache.set(f"federation:hub-jwks:{url}", data, JWKS_CACHE_SECONDS)
    return KeySet.import_key_set(data)


def caller(request: HttpRequest) -> str:
    """The calling instance's code, from its bearer token; :class:`Unauthorized` otherwise."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer token of the hub realm is required")
    token = token.strip()
    try:
        kid = jws.extract_compact(token.encode()).protected.get("kid")
    except (JoseError, ValueError):
        raise Unauthorized("the bearer token is not a JWT") from None
    keys = _hub_keys()
    if kid and not any(k.kid == kid for k in keys.keys):
        keys = _hub_keys(refresh=True)
    try:
        decoded = jwt.decode(token, keys, algorithms=["RS256", "ES256", "PS256"])
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": hub_issuer()}, exp={"essential": True}
        ).validate(decoded.claims)
    except (JoseError, ValueError) as exc:
        raise Unauthorized(
            f"the bearer token is not valid here: {exc.__class__.__name__}"
        ) from None
    azp = str(decoded.claims.get("azp", ""))
    if not azp.startswith(CLIENT_PREFIX):
        raise Unauthorized("the token was not issued to a federation client")
    return azp.removeprefix(CLIENT_PREFIX)
