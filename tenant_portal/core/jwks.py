"""A Keycloak realm's signing keys (its JWKS), fetched once and again only when needed.

Every token the portal checks (a hub-realm client's bearer token on the feed and at
``/xapi/statements``, the portal realm's back-channel logout token) names its key by ``kid``.
A ``kid`` the portal does not know may mean the realm rotated its keys, so the key set is
fetched again — but at most once per key set every :data:`REFETCH_SECONDS` in this process.
Anyone can send a token with a made-up ``kid``; without the limit each such request would make
the portal fetch the keys again while holding one of its few threads, an amplification against
the portal and the realm alike. Within the window a token with an unknown ``kid`` is checked
against the keys already held, which refuses it at once.

The key set is held in this process for :data:`CACHE_SECONDS` (not in Django's cache, which
pages can crowd out). One thread fetches; others asking for the same set wait for its result
rather than fetching too. After a failed fetch no other is tried for :data:`RETRY_SECONDS`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

CACHE_SECONDS = 300.0
REFETCH_SECONDS = 60.0
RETRY_SECONDS = 5.0


class KeysUnavailable(Exception):
    """The realm's keys cannot be read right now; the message names no token content."""


@dataclass
class _Held:
    lock: threading.Lock = field(default_factory=threading.Lock)
    keys: KeySet | None = None
    kids: frozenset[str] = frozenset()
    fetched: float = 0.0  # when ``keys`` arrived (monotonic seconds)
    attempted: float | None = None  # when the last fetch started, whatever its outcome
    failed: bool = False


_registry = threading.Lock()
_held: dict[str, _Held] = {}


def _now() -> float:
    return time.monotonic()


def _of(url: str) -> _Held:
    with _registry:
        return _held.setdefault(url, _Held())


def forget() -> None:
    """Drop every key set held and every fetch remembered (for tests and operators' shells)."""
    with _registry:
        _held.clear()


def key_set(
    url: str, *, kid: str | None = None, refresh: bool = False, timeout: float = 10.0
) -> KeySet:
    """The key set published at ``url``.

    ``kid`` is the key a token names: when the held set lacks it, the set is fetched again if
    the limit allows. ``refresh`` asks the same when the held set failed to verify a token.
    Either way, within the limit the held set is returned as it is, and the caller's check
    refuses the token. :class:`KeysUnavailable` when no current set is held and none can be
    fetched.
    """
    held = _of(url)
    # Without the lock: the common answer, and the refusal within the limit, wait for nobody.
    answer = _decide(held, kid, refresh, _now())
    if answer is not None:
        return answer
    with held.lock:
        # Another thread may have fetched while this one waited for the lock.
        answer = _decide(held, kid, refresh, _now())
        if answer is not None:
            return answer
        return _fetch(held, url, timeout)


def _decide(held: _Held, kid: str | None, refresh: bool, now: float) -> KeySet | None:
    """The held set when no fetch is due; ``None`` when this caller should fetch."""
    keys = held.keys
    current = keys is not None and now - held.fetched < CACHE_SECONDS
    if held.attempted is not None and now - held.attempted < RETRY_SECONDS and held.failed:
        if current and keys is not None:
            return keys
        raise KeysUnavailable("the realm's keys cannot be read right now")
    if not current or keys is None:
        return None
    wanted = refresh or (kid is not None and kid not in held.kids)
    if not wanted:
        return keys
    if held.attempted is not None and now - held.attempted < REFETCH_SECONDS:
        return keys  # the limit: this token is checked against the keys already held
    return None


def _fetch(held: _Held, url: str, timeout: float) -> KeySet:
    held.attempted = _now()
    try:
        response = httpx.get(url, timeout=timeout)
        response.raise_for_status()
        keys = KeySet.import_key_set(response.json())
    except (httpx.HTTPError, ValueError, TypeError, KeyError, JoseError):
        held.failed = True
        if held.keys is not None and held.attempted - held.fetched < CACHE_SECONDS:
            return held.keys
        raise KeysUnavailable("the realm's keys cannot be read right now") from None
    held.keys = keys
    held.kids = frozenset(str(k.kid) for k in keys.keys if k.kid)
    held.fetched = held.attempted
    held.failed = False
    return keys
