"""Every rule of the back-channel logout token, one at a time.

Keycloak signs only valid tokens, so the rules that refuse expired or malformed ones are driven
here with a key of the test's own, whose JWKS a loopback HTTP server publishes as a realm would.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from tenant_portal.accounts.logout_token import (
    BACKCHANNEL_EVENT,
    LogoutTokenError,
    validate_logout_token,
)

ISSUER = "http://127.0.0.1:1/realms/bihar"
KEY = RSAKey.generate_key(2048, parameters={"kid": "realm-key", "alg": "RS256", "use": "sig"})


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    body = json.dumps({"keys": [KEY.as_dict(private=False)]}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/certs"
    server.shutdown()


def token(**changes: Any) -> str:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": "portal",
        "iat": int(time.time()),
        "exp": int(time.time()) + 60,
        "jti": "e7c6",
        "sid": "keycloak-session-1",
        "sub": "user-1",
        "events": {BACKCHANNEL_EVENT: {}},
    }
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": "RS256", "kid": "realm-key"}, claims, KEY)


def check(raw: str, jwks_url: str) -> Any:
    return validate_logout_token(raw, issuer=ISSUER, client_id="portal", jwks_url=jwks_url)


def test_a_valid_token_names_the_session(jwks_url: str) -> None:
    ended = check(token(), jwks_url)
    assert (ended.sid, ended.sub) == ("keycloak-session-1", "user-1")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iat": int(time.time()) - 3600, "exp": None}, "expired or not yet valid"),
        ({"iat": int(time.time()) + 3600}, "expired or not yet valid"),
        ({"exp": int(time.time()) - 10}, "expired or not yet valid"),
        ({"iss": "http://127.0.0.1:1/realms/rajasthan"}, "issuer is not this portal's realm"),
        ({"aud": "account"}, "not addressed to this portal"),
        ({"events": None}, "lacks the back-channel logout event"),
        ({"events": {"urn:other": {}}}, "lacks the back-channel logout event"),
        ({"nonce": "abc"}, "must not carry a nonce"),
        ({"sid": None, "sub": None}, "names neither a session nor a subject"),
    ],
)
def test_a_token_breaking_a_rule_is_refused_with_its_reason(
    jwks_url: str, changes: dict[str, Any], reason: str
) -> None:
    with pytest.raises(LogoutTokenError, match=reason):
        check(token(**changes), jwks_url)


def test_garbage_is_refused(jwks_url: str) -> None:
    with pytest.raises(LogoutTokenError, match="signature or format"):
        check("not.a.token", jwks_url)


def test_unreachable_keys_refuse_rather_than_trust(jwks_url: str) -> None:
    with pytest.raises(LogoutTokenError, match="keys could not be fetched"):
        check(token(), "http://127.0.0.1:9/certs")
