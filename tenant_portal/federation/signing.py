"""Signing the records this instance originates, and checking records against their origin.

Records travel as compact JWS (ES256, joserfc) whose payload is the record's JSON. The
signing key is made on first use and kept in the database; ``rotate_key`` retires it and
makes a new one. ``/federation/v1/keys`` publishes the public half of the current key and of
every retired key still named by a change in the feed, so a record keeps verifying for as
long as anyone can fetch it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from tenant_portal.federation.models import Change, SigningKey

ALGORITHM = "ES256"
MEDIA_TYPE = "karmayogi-course+jws"
KEYS_CACHE_SECONDS = 300


class SignatureError(ValueError):
    """A record whose signature does not check out; the message says why."""


@transaction.atomic
def current_key() -> SigningKey:
    key = SigningKey.objects.select_for_update().filter(retired__isnull=True).first()
    if key is None:
        private = ECKey.generate_key("P-256", private=True)
        kid = uuid.uuid4().hex
        key = SigningKey.objects.create(
            kid=kid,
            private_jwk={**private.as_dict(private=True), "kid": kid},
            public_jwk={
                **private.as_dict(private=False),
                "kid": kid,
                "use": "sig",
                "alg": ALGORITHM,
            },
        )
    return key


@transaction.atomic
def rotate_key() -> SigningKey:
    """Retire the signing key and make a new one; the old one stays published while needed."""
    SigningKey.objects.filter(retired__isnull=True).update(retired=timezone.now())
    return current_key()


def published_keys() -> dict[str, Any]:
    """The JWKS at /federation/v1/keys: the current key and retired keys still in use."""
    current = current_key()
    in_use = set(Change.objects.values_list("kid", flat=True).distinct())
    keys = [current.public_jwk] + [
        k.public_jwk for k in SigningKey.objects.filter(retired__isnull=False, kid__in=in_use)
    ]
    return {"keys": keys}


def sign(record: dict[str, Any]) -> tuple[str, str]:
    """(kid, compact JWS) of the record, signed with the current key."""
    key = current_key()
    payload = json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": MEDIA_TYPE}
    token = jws.serialize_compact(header, payload.encode(), ECKey.import_key(key.private_jwk))
    return key.kid, token


def fetch_keys(keys_url: str, *, refresh: bool = False) -> KeySet:
    """An origin's published keys, cached for a few minutes (refetched once on an unknown kid)."""
    cache_key = f"federation:keys:{keys_url}"
    data = None if refresh else cache.get(cache_key)
    if data is None:
        try:
            response = httpx.get(keys_url, timeout=10.0)
            response.raise_for_status()
            data = response.json()
            KeySet.import_key_set(data)
        except (httpx.HTTPError, ValueError, JoseError) as exc:
            raise SignatureError(f"cannot read the origin's keys at {keys_url}: {exc}") from None
        cache.set(cache_key, data, KEYS_CACHE_SECONDS)
    return KeySet.import_key_set(data)


def verify(token: str, keys_url: str) -> dict[str, Any]:
    """The record inside ``token`` if its origin's key at ``keys_url`` signed it."""
    try:
        header = jws.extract_compact(token.encode()).protected
    except (JoseError, ValueError) as exc:
        raise SignatureError(f"not a compact JWS: {exc}") from None
    if header.get("alg") != ALGORITHM:
        raise SignatureError(f"algorithm {header.get('alg')!r} is not {ALGORITHM}")
    kid = str(header.get("kid", ""))
    keys = fetch_keys(keys_url)
    if not any(k.kid == kid for k in keys.keys):
        keys = fetch_keys(keys_url, refresh=True)
        if not any(k.kid == kid for k in keys.keys):
            raise SignatureError(f"key {kid[:40]!r} is not one of the origin's keys")
    try:
        verified = jws.deserialize_compact(token.encode(), keys, algorithms=[ALGORITHM])
        record = json.loads(verified.payload)
    except (JoseError, ValueError) as exc:
        raise SignatureError(f"the signature does not verify: {exc}") from None
    if not isinstance(record, dict):
        raise SignatureError("the signed payload is not a JSON object")
    return record
