"""A stand-in for a Keycloak realm's keys endpoint that counts how often it is fetched.

Only the keys URL is stood in for (``<issuer>/protocol/openid-connect/certs``): the tests mint
tokens with the realm's key themselves, so they can also forge ones a real Keycloak never signs
(an unknown ``kid``, another key, a missing claim). The real-Keycloak paths are covered by
``tests/tenant_portal`` (test_federation, test_xapi, test_sign_in).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

from tenant_portal.accounts.logout_token import BACKCHANNEL_EVENT

REALM_KEY = RSAKey.generate_key(2048, parameters={"kid": "realm-key", "alg": "RS256"})
# Signs forged tokens: a key the realm never published, under a kid the realm does not know.
FORGED_KEY = RSAKey.generate_key(2048, parameters={"kid": "forged-kid", "alg": "RS256"})


class StandInRealm:
    """Serves ``{"keys": [...]}`` at every path and counts the fetches."""

    def __init__(self, name: str = "hub") -> None:
        self.keys: list[RSAKey] = [REALM_KEY]
        self.fetches = 0
        self.delay = 0.0
        realm = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    realm.fetches += 1
                time.sleep(realm.delay)
                body = json.dumps(
                    {"keys": [{**k.as_dict(private=False), "kid": k.kid} for k in realm.keys]}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}/realms/{name}"
        self.jwks_url = f"{self.issuer}/protocol/openid-connect/certs"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def access_token(
        self, azp: str = "federation-bihar", key: RSAKey = REALM_KEY, **claims: Any
    ) -> str:
        """A client-credentials access token as the realm issues one (``azp`` names the client)."""
        now = int(time.time())
        body = {"iss": self.issuer, "azp": azp, "iat": now, "exp": now + 300, **claims}
        return jwt.encode({"alg": "RS256", "kid": key.kid}, body, key)

    def logout_token(self, key: RSAKey = REALM_KEY, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "aud": "portal",
            "iat": now,
            "exp": now + 60,
            "jti": "e7c6",
            "sid": "keycloak-session-1",
            "events": {BACKCHANNEL_EVENT: {}},
            **claims,
        }
        return jwt.encode({"alg": "RS256", "kid": key.kid}, body, key)


@contextmanager
def stand_in_realm(name: str = "hub") -> Iterator[StandInRealm]:
    realm = StandInRealm(name)
    try:
        yield realm
    finally:
        realm.close()
