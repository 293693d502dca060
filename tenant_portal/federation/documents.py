"""Signed documents between operators and instances: compact JWS (ES256) whose header names
the document's media type (``typ``) and the signing key (``kid``).

The federation's documents (the member directory, join requests, credentials) are signed with
the instance's own signing key (:mod:`tenant_portal.federation.signing`) and checked against
the keys published at a keys URL the *reader* chooses, never one the document names for
itself (a join request is the one exception, and only because admitting it pins that URL).
"""

from __future__ import annotations

import json
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from tenant_portal.federation.signing import ALGORITHM, SignatureError, current_key, fetch_keys

MAX_DOCUMENT = 256 * 1024
# What parsing a hostile token raises (UnicodeError is a ValueError; a deeply nested payload
# exhausts the JSON decoder's recursion).
MALFORMED = (JoseError, ValueError, TypeError, KeyError, RecursionError)


class DocumentError(ValueError):
    """A document that is malformed or does not verify; the message is one line."""


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def sign(payload: dict[str, Any], typ: str) -> str:
    """``payload`` as a compact JWS signed with this instance's current key."""
    key = current_key()
    body = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": typ}
    return str(jws.serialize_compact(header, body.encode(), ECKey.import_key(key.private_jwk)))


def header(token: str, typ: str, what: str, *, limit: int = MAX_DOCUMENT) -> dict[str, Any]:
    """The protected header of ``token`` if it is a compact JWS of type ``typ`` (unverified)."""
    if len(token) > limit:
        raise DocumentError(f"the {what} is over {limit // 1024} KB")
    try:
        protected = dict(jws.extract_compact(token.encode()).protected)
    except MALFORMED:
        raise DocumentError(f"the {what} is not a compact JWS") from None
    if protected.get("typ") != typ:
        raise DocumentError(f"the {what} is not of type {typ}")
    if protected.get("alg") != ALGORITHM:
        raise DocumentError(f"the {what} is not signed with {ALGORITHM}")
    if not isinstance(protected.get("kid"), str) or not protected["kid"]:
        raise DocumentError(f"the {what} names no signing key")
    return protected


def unverified_payload(token: str, what: str) -> dict[str, Any]:
    """The payload of ``token`` before its signature is checked (to learn where its keys are)."""
    try:
        payload = json.loads(jws.extract_compact(token.encode()).payload)
    except MALFORMED:
        raise DocumentError(f"the {what}'s payload is not JSON") from None
    if not isinstance(payload, dict):
        raise DocumentError(f"the {what}'s payload is not a JSON object")
    return payload


def verify(
    token: str, keys_url: str, typ: str, what: str, *, limit: int = MAX_DOCUMENT
) -> dict[str, Any]:
    """The payload of ``token`` if a key published at ``keys_url`` signed it (``limit``: the
    largest token taken, in characters)."""
    kid = header(token, typ, what, limit=limit)["kid"]
    try:
        keys = fetch_keys(keys_url)
        if not any(k.kid == kid for k in keys.keys):
            keys = fetch_keys(keys_url, refresh=True)
    except SignatureError:
        raise DocumentError(f"cannot read the keys at {keys_url}") from None
    if not any(k.kid == kid for k in keys.keys):
        raise DocumentError(f"the keys at {keys_url} do not include the key that signed the {what}")
    try:
        verified = jws.deserialize_compact(token.encode(), keys, algorithms=[ALGORITHM])
        payload = json.loads(verified.payload)
    except MALFORMED:
        raise DocumentError(f"the signature of the {what} does not verify") from None
    if not isinstance(payload, dict):
        raise DocumentError(f"the {what}'s payload is not a JSON object")
    return payload
