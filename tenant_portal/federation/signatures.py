"""Checking the signatures of a feed page on every core, beside the sync's writes.

A record's ES256 signature costs about 0.1 ms to verify, all of it holding the GIL, so a sync
hands each page's tokens to worker processes while it writes the page before. A worker is told
the public keys the sync has read from origins so far and answers, for each token, the RFC 7638
thumbprint of the key whose signature it carries (or nothing). That answer is a memo, not a
verdict: ``signing.verify`` still looks the origin's keys up as always and skips only the
arithmetic, when a worker verified that very token with the very key it would pick.

This module imports no Django (nor anything that does): the workers are started fresh
(``spawn``), not forked from a process holding database connections and threads.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

ALGORITHM = "ES256"

# A worker's keys, imported once each, by thumbprint.
_imported: dict[str, ECKey] = {}


def watch_parent() -> None:
    """A worker's initializer: end the worker when the sync that started it is gone (killed
    mid-sync, it cannot say so), rather than wait on its queue for ever."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def signers(tokens: Sequence[str], keys: Sequence[tuple[str, dict[str, Any]]]) -> list[str | None]:
    """For each compact JWS in ``tokens``, the thumbprint of the key among ``keys`` (thumbprint,
    public JWK) with the token's ``kid`` that verifies its ES256 signature; None when none does
    (the sync then checks that token itself, and words the reason)."""
    by_kid: dict[str, list[tuple[str, ECKey]]] = {}
    for thumbprint, jwk in keys:
        key = _imported.get(thumbprint)
        if key is None:
            key = _imported[thumbprint] = ECKey.import_key(jwk)
        by_kid.setdefault(str(jwk.get("kid", "")), []).append((thumbprint, key))
    return [_signer(token, by_kid) for token in tokens]


def _signer(token: str, by_kid: dict[str, list[tuple[str, ECKey]]]) -> str | None:
    try:
        compact = jws.extract_compact(token.encode())
    except (JoseError, ValueError):
        return None
    header = compact.protected
    kid = header.get("kid")
    if header.get("alg") != ALGORITHM or not isinstance(kid, str):
        return None
    for thumbprint, key in by_kid.get(kid, []):
        try:
            if jws.validate_compact(compact, key, algorithms=[ALGORITHM]):
                return thumbprint
        except (JoseError, ValueError):
            continue
    return None
