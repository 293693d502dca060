"""Signing the records this instance originates, and checking records against their origin.

Records travel as compact JWS (ES256, joserfc) whose payload is the record's JSON. The
signing key is made on first use and kept in the database; ``rotate_key`` retires it and
makes a new one. ``/federation/v1/keys`` publishes the public half of the current key and of
every retired key still named by a change in the feed or by a credential issued here
(``learning.credentials``), so a record keeps verifying for as long as anyone can fetch it
and a credential for as long as its officer carries it.

A sync reads each origin's keys once (``key_ring``), and may have the signatures of a page
checked beforehand on other cores (``federation.signatures``); ``verify`` then skips only the
arithmetic for a token a worker verified with the very key it would pick itself.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpx
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, KeySet

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
    """The JWKS at /federation/v1/keys: the current key and retired keys still in use (named
    by a change in the feed, or by a credential issued here: those are carried for years)."""
    from tenant_portal.learning.models import Credential  # learning builds on federation

    current = current_key()
    in_use = set(Change.objects.values_list("kid", flat=True).distinct())
    in_use |= set(Credential.objects.values_list("kid", flat=True).distinct())
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


class KeyRing:
    """The origins' keys one sync has read, and the page's signatures checked beforehand."""

    def __init__(self) -> None:
        self.sets: dict[str, KeySet] = {}
        self.signers: dict[str, str] = {}  # token -> thumbprint of the key that verified it
        # By key object; the key is held too, so its id is not reused for another.
        self._thumbprints: dict[int, tuple[Key, str]] = {}
        self._kids: dict[str, str] = {}  # thumbprint -> kid, of the keys handed to workers

    def thumbprint(self, key: Key) -> str:
        found = self._thumbprints.get(id(key))
        if found is None:
            found = self._thumbprints[id(key)] = (key, key.thumbprint())
        return found[1]

    def public_keys(self) -> list[tuple[str, dict[str, Any]]]:
        """(thumbprint, public JWK) of every EC key read so far, for ``signatures.signers``."""
        found = []
        for keys in self.sets.values():
            for key in keys.keys:
                if isinstance(key, ECKey) and isinstance(key.kid, str):
                    self._kids[self.thumbprint(key)] = key.kid
                    found.append((self.thumbprint(key), key.as_dict(private=False)))
        return found

    def kid_of(self, token: str) -> str | None:
        """The kid of the key a worker verified ``token`` with, if one did."""
        thumbprint = self.signers.get(token)
        return None if thumbprint is None else self._kids.get(thumbprint)

    def remember(self, tokens: Sequence[str], thumbprints: Sequence[str | None]) -> None:
        """What the workers found for the page about to be checked (the last page's goes)."""
        self.signers = {t: p for t, p in zip(tokens, thumbprints, strict=True) if p is not None}

    def verified(self, token: str, keys: KeySet, kid: Any) -> bool:
        """Whether a worker verified ``token`` with the key joserfc would pick from ``keys``
        for the header's ``kid``."""
        thumbprint = self.signers.get(token)
        if thumbprint is None or not isinstance(kid, str):
            return False
        try:
            key = keys.get_by_kid(kid, {"alg": ALGORITHM, "use": "sig"})
        except (JoseError, ValueError):
            return False
        return self.thumbprint(key) == thumbprint


_ring: ContextVar[KeyRing | None] = ContextVar("federation_key_ring", default=None)


@contextmanager
def key_ring() -> Iterator[KeyRing]:
    """For one sync: each origin's keys are read once (again on an unknown kid), and
    signatures checked beforehand on other cores are taken into account."""
    ring = KeyRing()
    token = _ring.set(ring)
    try:
        yield ring
    finally:
        _ring.reset(token)


def fetch_keys(keys_url: str, *, refresh: bool = False) -> KeySet:
    """An origin's published keys, cached for a few minutes (refetched once on an unknown kid)."""
    ring = _ring.get()
    if ring is not None and not refresh and keys_url in ring.sets:
        return ring.sets[keys_url]
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
    keys = KeySet.import_key_set(data)
    if ring is not None:
        ring.sets[keys_url] = keys
    return keys


def verify(token: str, keys_url: str) -> dict[str, Any]:
    """The record inside ``token`` if its origin's key at ``keys_url`` signed it."""
    ring = _ring.get()
    kid = ring.kid_of(token) if ring is not None else None
    if ring is not None and kid is not None and ring.verified(token, fetch_keys(keys_url), kid):
        # A worker checked this very token with the key picked below for it: its header (the
        # algorithm, this kid) and signature are sound, and only the payload is left to read.
        segment = token.split(".")[1]
        return _record(segment + "=" * (-len(segment) % 4), encoded=True)
    try:
        compact = jws.extract_compact(token.encode())
    except (JoseError, ValueError) as exc:
        raise SignatureError(f"not a compact JWS: {exc}") from None
    header = compact.protected
    if header.get("alg") != ALGORITHM:
        raise SignatureError(f"algorithm {header.get('alg')!r} is not {ALGORITHM}")
    kid = str(header.get("kid", ""))
    keys = fetch_keys(keys_url)
    if not any(k.kid == kid for k in keys.keys):
        keys = fetch_keys(keys_url, refresh=True)
        if not any(k.kid == kid for k in keys.keys):
            raise SignatureError(f"key {kid[:40]!r} is not one of the origin's keys")
    try:
        payload = jws.deserialize_compact(token.encode(), keys, algorithms=[ALGORITHM]).payload
    except (JoseError, ValueError) as exc:
        raise SignatureError(f"the signature does not verify: {exc}") from None
    return _record(payload)


def _record(payload: bytes | str, *, encoded: bool = False) -> dict[str, Any]:
    """The record in a verified payload (``encoded``: still in base64url)."""
    try:
        record = json.loads(base64.urlsafe_b64decode(payload) if encoded else payload)
    except ValueError as exc:
        raise SignatureError(f"the signature does not verify: {exc}") from None
    if not isinstance(record, dict):
        raise SignatureError("the signed payload is not a JSON object")
    return record
