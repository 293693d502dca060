"""A stand-in for the hub realm's token endpoints, for the federation benchmark only.

In a federation the hub realm of Keycloak issues the client-credentials tokens that the feed
asks for. Starting Keycloak takes about a minute, more than the rest of a 10,000-record run, so
the benchmark serves the two endpoints the portal uses from a thread on loopback instead:

- ``GET  <issuer>/protocol/openid-connect/certs``: the JWKS the hub checks tokens with;
- ``POST <issuer>/protocol/openid-connect/token``: client credentials (HTTP Basic) in, an RS256
  token with ``iss``, ``azp`` and ``exp`` out, as Keycloak issues them.

The portal's own code (``federation.auth``, ``federation.sync.access_token``) reads them as it
reads Keycloak's, so the feed's authorisation runs unchanged. Never use this outside the bench.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey

REALM_PATH = "/realms/hub"
TOKEN_SECONDS = 300  # Keycloak's default access token lifespan


class TokenIssuer:
    """The endpoints, served on ``host`` from a daemon thread while the block runs."""

    def __init__(self, host: str, clients: dict[str, str]) -> None:
        self._clients = dict(clients)  # client id -> secret
        self._key = RSAKey.generate_key(2048, private=True)
        self._kid = secrets.token_hex(8)
        self._server = ThreadingHTTPServer((host, 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        host_, port = self._server.server_address[:2]
        self.url = f"http://{host_!s}:{port}{REALM_PATH}"

    def __enter__(self) -> TokenIssuer:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def jwks(self) -> dict[str, Any]:
        public = {**self._key.as_dict(private=False), "kid": self._kid, "alg": "RS256"}
        return {"keys": [{**public, "use": "sig"}]}

    def mint(self, client_id: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "azp": client_id,
            "sub": f"service-account-{client_id}",
            "typ": "Bearer",
            "iat": now,
            "exp": now + TOKEN_SECONDS,
            "jti": secrets.token_hex(16),
        }
        return jwt.encode({"alg": "RS256", "kid": self._kid}, claims, self._key)

    def _client(self, authorization: str) -> str | None:
        """The client id of valid HTTP Basic credentials, else None."""
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            client, _, secret = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return None
        known = self._clients.get(client)
        return client if known is not None and secrets.compare_digest(known, secret) else None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != f"{REALM_PATH}/protocol/openid-connect/certs":
                    self._send(404, {"error": "not found"})
                    return
                self._send(200, issuer.jwks())

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = self.rfile.read(length).decode()
                if self.path != f"{REALM_PATH}/protocol/openid-connect/token":
                    self._send(404, {"error": "not found"})
                    return
                client = issuer._client(self.headers.get("Authorization", ""))
                if client is None or "grant_type=client_credentials" not in form:
                    self._send(401, {"error": "unauthorized_client"})
                    return
                token = issuer.mint(client)
                body = {"access_token": token, "expires_in": TOKEN_SECONDS, "token_type": "Bearer"}
                self._send(200, body)

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the benchmark prints its own progress

        return Handler
