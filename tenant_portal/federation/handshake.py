"""The documents two operators exchange to join a tenant to a hub in another deployment
(DESIGN §10): a join request (tenant → hub), and credentials (hub → tenant).

- A **join request** (``karmayogi-join+jws``) is signed with the tenant's own signing key and
  names where that key is published (``keysUrl``, under the tenant's portal URL). The hub
  checks it against the keys fetched from that URL, so a request can only come from whoever
  controls the portal it names; admitting it records the member with that keys URL and the
  request's nonce (a request is admitted once). It carries no secret.
- **Credentials** (``karmayogi-credentials+jws``) are signed with the hub's key and carry the
  secrets of the tenant's clients in the hub realm. The tenant checks them against the keys
  of the hub URL its own spec names, never a URL taken from the file.

Every refusal is a :class:`HandshakeError` of one line, and nothing is recorded.
"""

from __future__ import annotations

import re
import secrets
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction

from tenant_portal.federation import documents, membership
from tenant_portal.federation.models import Member, SeenNonce

JOIN_TYPE = "karmayogi-join-request"
JOIN_MEDIA = "karmayogi-join+jws"
CREDENTIALS_TYPE = "karmayogi-federation-credentials"
CREDENTIALS_MEDIA = "karmayogi-credentials+jws"
MAX_AGE_SECONDS = 3 * 24 * 3600
MAX_FUTURE_SECONDS = 300
# infra.spec.TENANT_CODE_PATTERN, mirrored: the portal does not import the kit.
CODE_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
TENANT_TYPES = ("state", "country")
CREDENTIAL_FIELDS = (
    "member",
    "issuer",
    "federationClientId",
    "federationClientSecret",
    "brokerClientId",
    "brokerClientSecret",
)


class HandshakeError(Exception):
    """A document or an input that is refused; the message is one line naming what is wrong."""


def _http_url(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 500 or any(c.isspace() for c in value):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def _text(payload: dict[str, Any], name: str, what: str, limit: int = 200) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise HandshakeError(f"the {what}'s {name} is missing or malformed")
    return value


def _issued(payload: dict[str, Any], what: str, max_age: int | None) -> int:
    issued = payload.get("issued")
    if not isinstance(issued, int) or isinstance(issued, bool):
        raise HandshakeError(f"the {what}'s issued time is missing or malformed")
    now = time.time()
    if issued > now + MAX_FUTURE_SECONDS:
        raise HandshakeError(f"the {what} was issued in the future; check the clocks")
    if max_age is not None and now - issued > max_age:
        hours = (now - issued) / 3600
        raise HandshakeError(
            f"the {what} was issued {hours:.0f} hour(s) ago, more than the {max_age} s allowed"
        )
    return issued


# --- the join request ----------------------------------------------------------------------


@dataclass(frozen=True)
class JoinRequest:
    code: str
    name: str
    tenant_type: str
    portal_url: str
    keys_url: str
    broker_redirect_uri: str
    publish: bool
    nonce: str
    issued: int

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "tenantType": self.tenant_type,
            "portalUrl": self.portal_url,
            "keysUrl": self.keys_url,
            "brokerRedirectUri": self.broker_redirect_uri,
            "publish": self.publish,
            "nonce": self.nonce,
            "issued": self.issued,
        }


def join_request(*, broker_redirect_uri: str) -> str:
    """This instance's join request, signed with its current key."""
    portal = settings.PORTAL
    if portal.federation.is_hub:
        raise HandshakeError("this instance is the federation's hub; only a tenant asks to join")
    if not _http_url(broker_redirect_uri):
        raise HandshakeError("--broker-redirect-uri: not an http(s) URL")
    if not CODE_PATTERN.fullmatch(portal.federation_code):
        raise HandshakeError(
            f"this instance's code {portal.federation_code!r} is not a tenant code"
        )
    payload = {
        "type": JOIN_TYPE,
        "version": 1,
        "code": portal.federation_code,
        "name": portal.site_name,
        "tenantType": portal.tenant_type,
        "portalUrl": portal.portal_url,
        "keysUrl": membership.own_keys_url(),
        "brokerRedirectUri": broker_redirect_uri,
        "publish": portal.federation.publish,
        "nonce": secrets.token_urlsafe(24),
        "issued": int(time.time()),
    }
    return documents.sign(payload, JOIN_MEDIA)


def _require_hub() -> None:
    if not settings.PORTAL.federation.is_hub:
        raise HandshakeError("this instance is not the federation's hub")


def read_request(token: str, *, max_age: int = MAX_AGE_SECONDS) -> JoinRequest:
    """The join request in ``token``, once everything in it checks out (see the module)."""
    _require_hub()
    token = token.strip()
    try:
        documents.header(token, JOIN_MEDIA, "request")
        payload = documents.unverified_payload(token, "request")
    except documents.DocumentError as exc:
        raise HandshakeError(str(exc)) from None
    if payload.get("type") != JOIN_TYPE or payload.get("version") != 1:
        raise HandshakeError(f"the request is not a {JOIN_TYPE} version 1")
    code = payload.get("code")
    if not isinstance(code, str) or not CODE_PATTERN.fullmatch(code):
        raise HandshakeError("the request's code is not a tenant code")
    name = _text(payload, "name", "request")
    tenant_type = payload.get("tenantType")
    if tenant_type not in TENANT_TYPES:
        raise HandshakeError(f"the request's tenantType is not one of {', '.join(TENANT_TYPES)}")
    for field in ("portalUrl", "keysUrl", "brokerRedirectUri"):
        if not _http_url(payload.get(field)):
            raise HandshakeError(f"the request's {field} is not an http(s) URL")
    portal_url = str(payload["portalUrl"]).rstrip("/")
    keys_url = str(payload["keysUrl"])
    if _origin(keys_url) != _origin(portal_url) or not urlsplit(keys_url).path.startswith(
        urlsplit(portal_url).path
    ):
        raise HandshakeError("the request's keysUrl is not under its portalUrl")
    if not isinstance(payload.get("publish"), bool):
        raise HandshakeError("the request's publish is not true or false")
    nonce = payload.get("nonce")
    if not isinstance(nonce, str) or not NONCE_PATTERN.fullmatch(nonce):
        raise HandshakeError("the request's nonce is missing or malformed")
    issued = _issued(payload, "request", max_age)
    if code == settings.PORTAL.federation_code:
        raise HandshakeError(f"{code} is the hub's own code")
    existing = Member.objects.filter(code=code).first()
    if existing is not None:
        raise HandshakeError(f"{code} is already a member ({existing.status}); remove it first")
    if SeenNonce.objects.filter(nonce=nonce).exists():
        raise HandshakeError("the request was admitted before (its nonce has been seen)")
    try:
        documents.verify(token, keys_url, JOIN_MEDIA, "request")
    except documents.DocumentError as exc:
        raise HandshakeError(str(exc)) from None
    return JoinRequest(
        code=code,
        name=name,
        tenant_type=str(tenant_type),
        portal_url=portal_url,
        keys_url=keys_url,
        broker_redirect_uri=str(payload["brokerRedirectUri"]),
        publish=bool(payload["publish"]),
        nonce=nonce,
        issued=issued,
    )


def admit(token: str, *, admitted_by: str, max_age: int = MAX_AGE_SECONDS) -> JoinRequest:
    """Verify the join request again and record its member and its nonce, together."""
    if not admitted_by.strip() or len(admitted_by) > 200:
        raise HandshakeError("--admitted-by: say who admits the request (up to 200 characters)")
    request = read_request(token, max_age=max_age)
    membership.ensure_declared()
    try:
        with transaction.atomic():
            SeenNonce.objects.create(nonce=request.nonce, code=request.code)
            Member.objects.create(
                code=request.code,
                name=request.name[:200],
                tenant_type=request.tenant_type,
                portal_url=request.portal_url,
                keys_url=request.keys_url,
                broker_redirect_uri=request.broker_redirect_uri,
                publish=request.publish,
                status=Member.ACTIVE,
                source=Member.ADMITTED,
                admitted_by=admitted_by.strip(),
            )
    except IntegrityError:
        raise HandshakeError(
            f"{request.code} was admitted meanwhile, or its nonce was seen; nothing recorded"
        ) from None
    membership.forget()
    return request


# --- credentials ---------------------------------------------------------------------------


def sign_credentials(values: Any) -> str:
    """The credentials document for a recorded member, signed with the hub's key."""
    _require_hub()
    if not isinstance(values, dict):
        raise HandshakeError("the input is not a JSON object")
    unknown = sorted(set(values) - set(CREDENTIAL_FIELDS))
    if unknown:
        raise HandshakeError(f"the input has an unknown key {unknown[0][:64]!r}")
    for name in CREDENTIAL_FIELDS:
        value = values.get(name)
        if not isinstance(value, str) or not value.strip() or len(value) > 1000:
            raise HandshakeError(f"the input's {name} is missing or not a non-empty string")
    if not _http_url(values["issuer"]):
        raise HandshakeError("the input's issuer is not an http(s) URL")
    code = values["member"]
    if not Member.objects.filter(code=code).exists():
        raise HandshakeError(f"{code[:64]} is not a member of this federation; admit it first")
    portal = settings.PORTAL
    payload = {
        "type": CREDENTIALS_TYPE,
        "version": 1,
        "hub": portal.federation_code,
        "hubName": portal.site_name,
        "hubUrl": portal.portal_url,
        **{name: values[name] for name in CREDENTIAL_FIELDS},
        "issued": int(time.time()),
        "nonce": secrets.token_urlsafe(24),
    }
    return documents.sign(payload, CREDENTIALS_MEDIA)


def read_credentials(token: str, *, hub_url: str) -> dict[str, Any]:
    """The credentials in ``token`` if the hub at ``hub_url`` signed them for this instance."""
    if not _http_url(hub_url):
        raise HandshakeError("--hub-url: not an http(s) URL")
    hub_url = hub_url.rstrip("/")
    try:
        payload = documents.verify(
            token.strip(), membership.keys_url_of(hub_url), CREDENTIALS_MEDIA, "credentials"
        )
    except documents.DocumentError as exc:
        raise HandshakeError(str(exc)) from None
    if payload.get("type") != CREDENTIALS_TYPE or payload.get("version") != 1:
        raise HandshakeError(f"the credentials are not {CREDENTIALS_TYPE} version 1")
    for name in ("hub", "hubName", "hubUrl", "nonce", *CREDENTIAL_FIELDS):
        _text(payload, name, "credentials", limit=1000)
    me = settings.PORTAL.federation_code
    if payload["member"] != me:
        raise HandshakeError(
            f"the credentials are for {payload['member'][:64]}, not this instance ({me})"
        )
    if str(payload["hubUrl"]).rstrip("/") != hub_url:
        raise HandshakeError(
            f"the credentials name the hub at {payload['hubUrl'][:200]}, not {hub_url}"
        )
    _issued(payload, "credentials", None)
    return payload


def read_file(path: str, stdin: Any = None) -> str:
    """The document in file ``path`` (``-``: standard input), at most 256 KB of UTF-8 text."""
    try:
        if path == "-":
            text = str((stdin or sys.stdin).read(documents.MAX_DOCUMENT + 1))
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read(documents.MAX_DOCUMENT + 1)
    except OSError as exc:
        raise HandshakeError(f"cannot read {path} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise HandshakeError(f"{path} is not UTF-8 text") from None
    if len(text) > documents.MAX_DOCUMENT:
        raise HandshakeError(f"{path} is over {documents.MAX_DOCUMENT // 1024} KB")
    return text
