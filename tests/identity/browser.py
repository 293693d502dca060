"""An OIDC authorization-code flow with PKCE, driven through Keycloak's HTML forms by httpx.

It does what a browser does: follows redirects, fills the login form, clicks the identity
provider's link, and stops at the redirect to the client's callback, whose code it exchanges.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

import httpx

FORM_ACTION = re.compile(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"', re.S)
ANY_FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"', re.S)


@dataclass(frozen=True)
class Client:
    server_url: str
    realm: str
    client_id: str
    client_secret: str
    redirect_uri: str


class FlowError(AssertionError):
    pass


def browser_session() -> httpx.Client:
    """An httpx client that keeps cookies the way a browser does on loopback.

    Browsers treat 127.0.0.0/8 as a secure context and send ``Secure`` cookies to it over
    plain HTTP; Python's cookie jar does not, and would drop Keycloak's session cookies
    between requests. The hook clears the flag on loopback cookies as they arrive.
    """

    def send_loopback_cookies(request: httpx.Request) -> None:
        if not (request.url.host.startswith("127.") or request.url.host == "localhost"):
            return
        for cookie in client.cookies.jar:
            cookie.secure = False
        if "cookie" in request.headers:
            del request.headers["cookie"]
        client.cookies.set_cookie_header(request)

    client = httpx.Client(
        follow_redirects=False, timeout=30.0, event_hooks={"request": [send_loopback_cookies]}
    )
    return client


HIDDEN_INPUT = re.compile(r'<input[^>]*type="hidden"[^>]*>', re.S)
ATTRIBUTE = re.compile(r'(name|value)="([^"]*)"')


def _auto_post(session: httpx.Client, response: httpx.Response) -> httpx.Response | None:
    """Submit a SAML POST-binding form, as a browser's script does on load; None if none."""
    if response.status_code != 200 or not re.search(
        r'name="SAML(Request|Response)"', response.text
    ):
        return None
    data = {}
    for tag in HIDDEN_INPUT.findall(response.text):
        attributes = dict(ATTRIBUTE.findall(tag))
        if "name" in attributes:
            data[attributes["name"]] = html.unescape(attributes.get("value", ""))
    return session.post(urljoin(str(response.url), form_action(response.text)), data=data)


def _follow(session: httpx.Client, response: httpx.Response, stop_prefix: str) -> httpx.Response:
    """Follow redirects (and SAML's self-submitting forms) until a page, or a redirect to
    ``stop_prefix`` (the client callback)."""
    for _ in range(20):
        posted = _auto_post(session, response)
        if posted is not None:
            response = posted
            continue
        if response.status_code not in (301, 302, 303, 307):
            return response
        location = urljoin(str(response.url), response.headers["Location"])
        if location.startswith(stop_prefix):
            return response
        response = session.get(location)
    raise FlowError("too many redirects")


def form_action(page: str) -> str:
    match = FORM_ACTION.search(page) or ANY_FORM_ACTION.search(page)
    if not match:
        raise FlowError(f"no login form on the page: {visible_text(page)}")
    return html.unescape(match.group(1))


def sign_in(
    client: Client,
    username: str,
    password: str,
    *,
    via_idp: str | None = None,
    ui_locales: str | None = None,
) -> dict[str, Any]:
    """Sign ``username`` in to ``client`` and return the token response.

    With ``via_idp``, the user clicks that identity provider's button on the client realm's
    login page and signs in at the provider instead.
    """
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    state = secrets.token_urlsafe(12)
    params = {
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "response_type": "code",
        "scope": "openid",
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if ui_locales:
        params["ui_locales"] = ui_locales
    base = f"{client.server_url}/realms/{client.realm}/protocol/openid-connect"
    with browser_session() as session:
        page = _follow(
            session, session.get(f"{base}/auth?{urlencode(params)}"), client.redirect_uri
        )
        if via_idp:
            link = re.search(rf'href="([^"]*/broker/{re.escape(via_idp)}/login[^"]*)"', page.text)
            if not link:
                raise FlowError(f"no '{via_idp}' sign-in button on the login page")
            page = _follow(
                session,
                session.get(urljoin(str(page.url), html.unescape(link.group(1)))),
                client.redirect_uri,
            )
        response = session.post(
            form_action(page.text), data={"username": username, "password": password}
        )
        response = _follow(session, response, client.redirect_uri)
        if response.status_code == 200 and "kc-form-login" in response.text:
            raise FlowError("sign-in refused")
        if response.status_code not in (302, 303):
            raise FlowError(f"sign-in stopped at a page: {visible_text(response.text)}")
        callback = urlparse(urljoin(str(response.url), response.headers["Location"]))
        query = parse_qs(callback.query)
        if query.get("state") != [state] or "code" not in query:
            raise FlowError(f"bad callback: {callback.geturl()}")
        token = session.post(
            f"{base}/token",
            data={
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": client.redirect_uri,
                "client_id": client.client_id,
                "client_secret": client.client_secret,
                "code_verifier": verifier,
            },
        )
        token.raise_for_status()
        return dict(token.json())


def authorization_request(client: Client) -> tuple[str, dict[str, str]]:
    """The realm's authorization endpoint and the parameters a browser's sign-in starts with."""
    params = {
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "response_type": "code",
        "scope": "openid",
        "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
    }
    return f"{client.server_url}/realms/{client.realm}/protocol/openid-connect/auth", params


def login_page(client: Client, ui_locales: str | None = None) -> httpx.Response:
    """The realm's login page as a browser first sees it."""
    endpoint, params = authorization_request(client)
    if ui_locales:
        params["ui_locales"] = ui_locales
    url = f"{endpoint}?{urlencode(params)}"
    with httpx.Client(follow_redirects=True, timeout=30.0) as session:
        return session.get(url)


def visible_text(page: str, limit: int | None = 600) -> str:
    """The visible text of a page, its first `limit` characters (a Keycloak page's title and
    messages, for failure reports); `limit=None` keeps it all."""
    page = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())[:limit]
