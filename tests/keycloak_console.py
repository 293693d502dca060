"""Signing in to Keycloak's admin console as a person does, for tests of the operator's account."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx


def console_sign_in(
    url: str, username: str, password: str, client: httpx.Client | None = None
) -> httpx.Response:
    """Sign in as the admin console does: ``security-admin-console``, code flow with PKCE,
    the username and password typed into Keycloak's login form; the token response.

    ``client`` reaches ``url`` (the rig's client for a public name behind TLS); by default a
    plain one.
    """
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    redirect_uri = f"{url}/admin/master/console/"
    with client or httpx.Client(timeout=30.0) as browser:
        browser.base_url = httpx.URL(url)
        page = browser.get(
            "/realms/master/protocol/openid-connect/auth",
            params={
                "client_id": "security-admin-console",
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "response_mode": "query",
                "scope": "openid",
                "state": secrets.token_urlsafe(8),
                "nonce": secrets.token_urlsafe(8),
                "code_challenge": challenge.rstrip(b"=").decode(),
                "code_challenge_method": "S256",
            },
        )
        assert page.status_code == 200, page.text[:500]
        form = re.search(r'<form[^>]*\saction="([^"]+)"', page.text)
        assert form is not None, page.text[:500]
        # Keycloak marks its cookies Secure; browsers send them to loopback over HTTP, but
        # Python's cookie jar does not, so they go by hand.
        cookies = "; ".join(f"{c.name}={c.value}" for c in browser.cookies.jar)
        signed_in = browser.post(
            html.unescape(form.group(1)),
            data={"username": username, "password": password},
            headers={"Cookie": cookies},
        )
        assert signed_in.status_code == 302, signed_in.text[:500]
        location = signed_in.headers["location"]
        assert location.startswith(redirect_uri), location
        code = parse_qs(urlsplit(location).query)["code"][0]
        return browser.post(
            f"{url}/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "authorization_code",
                "client_id": "security-admin-console",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
        )
