"""Hostile input at every HTTP interface of the portal: a table of interfaces by families of
hostile values, and for each interface wrong methods and wrong tokens.

Every answer must hold: no 5xx; the hostile value never comes back raw in the body (each value
holds a character that escaping changes, so a raw copy is a real reflection); none of the
known secrets seeded into the settings (Django's ``SECRET_KEY``, the OIDC client secret, the
federation client secret) in a body, a header or a log line. Pages the anonymous page cache
serves carry the same security headers on a hit as on the miss that stored them.

Adding an interface is one entry in :data:`INTERFACES`; a family of values, one entry in
:data:`FAMILIES`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_from_bytes

import pytest
from django.db import transaction
from django.http import HttpResponse
from django.test import Client
from joserfc import jwt
from joserfc.jwk import OctKey

from tenant_portal.catalogue.blocks import lessons_of
from tenant_portal.catalogue.models import CatalogueEntry, CoursePage
from tenant_portal.learning.models import Enrolment
from tests.security.conftest import SECRETS
from tests.security.realm import FORGED_KEY, REALM_KEY, StandInRealm
from tests.tenant_portal.learning import add_course, make_user, prepare_site

pytestmark = pytest.mark.django_db

# --- the hostile values ----------------------------------------------------------------------

Value = str | bytes  # bytes: sent as they are (invalid UTF-8)

FAMILIES: dict[str, tuple[Value, ...]] = {
    "control characters": ("\x00", "a\x01b\x1f<", "\x7f<kfk>", "<kfk>\x0b\x0c\x1b[31m"),
    "markup": (
        '<script>alert("kfk")</script>',
        '"><img src=x onerror=alert(1)>',
        "'><svg/onload=alert('kfk')>",
    ),
    "template and format strings": (
        "<kfk>{{ settings.SECRET_KEY }}{% debug %}%(SECRET_KEY)s{0.__class__}${jndi:x}</kfk>",
    ),
    "injection": ("' OR '1'='1' --<kfk>", "../../../../etc/passwd<kfk>", "kfk\r\nSet-Cookie: x=1"),
    "oversized": ("<kfk>" + "A" * 60_000, "<" * 5_000),
    "numbers": ("9" * 5_000, "-99999999999999999999999", "1e999999", "NaN", "-0"),
    "invalid UTF-8": (b"\xff\xfe<kfk>", b"\xc3(<kfk>", b"\xed\xa0\x80<kfk>"),
}

# --- the interfaces --------------------------------------------------------------------------


@dataclass(frozen=True)
class Interface:
    """One HTTP interface: how to call it well, and where hostile values go.

    ``path`` may name ``{course}``, ``{text}``, ``{quiz}`` (lessons of the course),
    ``{department}`` and ``{value}`` (a path segment holding the hostile value). ``into`` lists
    where a value goes: ``query:<name>``, ``form:<name>``, ``path``, ``json`` (inside an xAPI
    statement), ``batch`` (inside the second statement of a batch of three, whose well-formed
    form is that batch), ``body`` (the whole body), ``header:<name>``.
    """

    method: str
    path: str
    into: tuple[str, ...]
    who: str = "anonymous"  # anonymous | learner | mdo | peer (hub-realm token) | realm
    params: dict[str, str] = field(default_factory=dict)
    methods: tuple[str, ...] = ("GET", "HEAD")
    # Answers any method as GET and writes nothing (Wagtail's page serving; views that only
    # branch on POST): other methods must not crash, but need not be refused.
    lenient: bool = False
    value: str = "x"  # what {value} holds when no hostile value goes into the path


CATALOGUE_FILTERS = ("q", "area", "theme", "language", "provider", "duration", "page")
XAPI = {"X-Experience-API-Version": "1.0.3"}

INTERFACES: dict[str, Interface] = {
    "home": Interface("GET", "/", ("query:q",), lenient=True),
    "catalogue": Interface(
        "GET", "/courses/", tuple(f"query:{n}" for n in CATALOGUE_FILTERS), lenient=True
    ),
    "course page": Interface("GET", "/courses/notes/", ("query:lesson",), lenient=True),
    "course record": Interface("GET", "/courses/{value}/", ("path",)),
    "certificate check": Interface("GET", "/certificates/{value}/", ("path",)),
    "language switch": Interface(
        "POST",
        "/i18n/setlang/",
        ("form:language", "form:next"),
        params={"language": "hi", "next": "/courses/"},
        methods=("POST",),
    ),
    "enrol": Interface(
        "POST", "/learn/{course}/enrol/", ("form:course",), who="learner", methods=("POST",)
    ),
    "mark done": Interface(
        "POST",
        "/learn/{course}/lessons/{value}/done/",
        ("path", "form:lesson"),
        who="learner",
        methods=("POST",),
        value="{text}",
    ),
    "quiz": Interface(
        "POST",
        "/learn/{course}/quizzes/{quiz}/",
        ("form:q1", "form:q2"),
        who="learner",
        params={"q1": "0", "q2": "0"},
        methods=("POST",),
    ),
    "passbook": Interface(
        "POST",
        "/passbook/",
        ("form:name_local",),
        who="learner",
        methods=("GET", "HEAD", "POST"),
        lenient=True,
    ),
    "post choice": Interface(
        "POST", "/passbook/post/", ("form:post",), who="learner", methods=("POST",)
    ),
    "credential check": Interface(
        "POST", "/credentials/verify/", ("form:credential",), methods=("GET", "HEAD", "POST")
    ),
    "credential import": Interface(
        "POST", "/passbook/import/", ("form:credential",), who="learner", methods=("POST",)
    ),
    "credential status list": Interface(
        "GET", "/credentials/status/{value}/", ("path",), methods=("GET",), value="0"
    ),
    "department report": Interface(
        "GET", "/reports/{department}/", ("query:page",), who="mdo", lenient=True
    ),
    "post assignment": Interface(
        "POST",
        "/reports/{department}/posts/",
        ("form:officer", "form:post"),
        who="mdo",
        methods=("POST",),
    ),
    "department report of another": Interface("GET", "/reports/{value}/", ("path",), who="mdo"),
    "department CSV": Interface(
        "GET", "/reports/{value}/csv/", ("path",), who="mdo", value="{department}", lenient=True
    ),
    "feed": Interface(
        "GET",
        "/federation/v1/changes",
        ("query:after", "query:limit", "header:If-None-Match"),
        who="peer",
    ),
    "content package": Interface(
        "GET", "/federation/v1/packages/{course}", ("query:version",), who="peer"
    ),
    "content package file": Interface(
        "GET", "/federation/v1/packages/{course}/files/{value}", ("path",), who="peer"
    ),
    "course file": Interface("GET", "/learn/files/{value}/guide.pdf", ("path",)),
    "framework document": Interface(
        "GET", "/federation/v1/framework", ("header:If-None-Match", "query:since"), who="peer"
    ),
    "keys": Interface("GET", "/federation/v1/keys", ("query:kid",)),
    "member directory": Interface("GET", "/federation/v1/members", ("query:code",)),
    "oai verb": Interface("GET", "/oai", ("query:verb",), methods=("GET", "HEAD", "POST")),
    "oai GetRecord": Interface(
        "POST",
        "/oai",
        ("form:identifier", "form:metadataPrefix"),
        params={"verb": "GetRecord", "identifier": "oai:karmayogi:x", "metadataPrefix": "oai_dc"},
        methods=("GET", "HEAD", "POST"),
    ),
    "oai ListRecords": Interface(
        "GET",
        "/oai",
        ("query:set", "query:from", "query:until", "query:metadataPrefix"),
        params={"verb": "ListRecords", "metadataPrefix": "oai_dc"},
        methods=("GET", "HEAD", "POST"),
    ),
    "oai resumption": Interface(
        "GET",
        "/oai",
        ("query:resumptionToken",),
        params={"verb": "ListIdentifiers"},
        methods=("GET", "HEAD", "POST"),
    ),
    "xapi POST": Interface(
        "POST",
        "/xapi/statements",
        ("json", "body", "header:X-Experience-API-Version"),
        who="peer",
        methods=("GET", "HEAD", "PUT", "POST"),
    ),
    "xapi POST batch": Interface(
        "POST",
        "/xapi/statements",
        ("batch", "header:X-Experience-API-Version"),
        who="peer",
        methods=("GET", "HEAD", "PUT", "POST"),
    ),
    "xapi PUT": Interface(
        "PUT",
        "/xapi/statements",
        ("query:statementId", "json"),
        who="peer",
        params={"statementId": "4f7c1f0e-4d55-4d0a-9d7f-1c2b3a4d5e6f"},
        methods=("GET", "HEAD", "PUT", "POST"),
    ),
    "xapi GET": Interface(
        "GET",
        "/xapi/statements",
        ("query:since", "query:limit", "query:cursor", "query:statementId", "query:ascending"),
        who="peer",
        methods=("GET", "HEAD", "PUT", "POST"),
    ),
    "back-channel logout": Interface(
        "POST", "/auth/backchannel-logout/", ("form:logout_token",), who="realm", methods=("POST",)
    ),
    "sign-in callback": Interface(
        "GET", "/auth/callback/", ("query:state", "query:code", "query:error")
    ),
    "sign-in start": Interface("GET", "/auth/authenticate/", ("query:next", "query:idp")),
}

# --- the portal: built once for the module, rolled back after it ------------------------------


@dataclass
class Portal:
    course: CoursePage
    text: str
    quiz: str
    department: str


@pytest.fixture(scope="module")
def portal(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Portal]:
    """A site, a course and two users, made once: every test runs inside a savepoint of this
    module's transaction, which is rolled back at the end."""
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
    try:
        with django_db_blocker.unblock():
            course = add_course(prepare_site(), "notes")
            lessons = {lesson.kind: lesson.id for lesson in lessons_of(course.modules)}
            learner = make_user("hostile.learner", department="health")
            entry = CatalogueEntry.objects.get(uuid=course.translation_key)
            Enrolment.objects.create(user=learner, entry=entry)  # type: ignore[misc]
            make_user("hostile.mdo", department="health", roles=("mdo_admin",))
        yield Portal(course, lessons["text"], lessons["quiz"], "health")
    finally:
        with django_db_blocker.unblock():
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


# --- sending -----------------------------------------------------------------------------------


def _bytes(value: Value) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _encode(pairs: dict[str, Value]) -> str:
    return "&".join(
        f"{quote(name, safe='')}={quote_from_bytes(_bytes(value), safe='')}"
        for name, value in pairs.items()
    )


def statement(text: Value) -> bytes:
    """An xAPI statement of the caller with ``text`` in a language map and as the object's id."""
    body = {
        "actor": {"account": {"homePage": "https://learn.bihar.example", "name": "ab" * 16}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en": "KFKV"}},
        "object": {"id": "KFKV"},
        "context": {"platform": "bihar"},
    }
    encoded = json.dumps(body).encode()
    if isinstance(text, bytes):
        return encoded.replace(b"KFKV", text)  # not JSON any more: hostile too
    return encoded.replace(b'"KFKV"', json.dumps(text).encode())


def batch(text: Value = "https://learn.bihar.example/x") -> bytes:
    """Three statements of the caller, the second with ``text`` where :func:`statement` puts
    it; each gets its id from the hub."""
    good = statement("https://learn.bihar.example/x")
    return b"[" + b",".join((good, statement(text), good)) + b"]"


@dataclass
class Call:
    """One request, made from an interface and (perhaps) a hostile value at one place."""

    interface: Interface
    portal: Portal
    realm: StandInRealm
    method: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, client: Client, point: str = "", value: Value = "", method: str = "") -> Any:
        interface = self.interface
        method = method or interface.method
        params: dict[str, Value] = dict(interface.params)
        if interface.who == "realm":
            params.setdefault("logout_token", self.realm.logout_token())
        headers: dict[str, str] = {}
        if interface.who == "peer":
            headers = {"Authorization": f"Bearer {self.realm.access_token()}", **XAPI}
        headers.update(self.headers)
        segment = interface.value.format(**self.names())
        body: bytes = b""
        content_type = "application/x-www-form-urlencoded"
        where, _, name = point.partition(":")
        if where in ("query", "form"):
            params[name] = value
        elif where == "path":
            segment = quote_from_bytes(_bytes(value), safe="")
        elif where == "header":
            headers[name] = value.decode("latin-1") if isinstance(value, bytes) else value
        path = interface.path.format(**self.names(), value=segment)
        in_body = where == "form" or (interface.method == "POST" and where != "query")
        if where == "json":
            body, content_type = statement(value), "application/json"
        elif "batch" in interface.into and method == "POST":
            body, content_type = batch(value) if where == "batch" else batch(), "application/json"
        elif where == "body":
            body, content_type = _bytes(value), "application/json"
        elif interface.path.startswith("/xapi/") and method in ("POST", "PUT"):
            body, content_type = statement("https://learn.bihar.example/x"), "application/json"
        elif (in_body and params) or where == "form":
            body = _encode(params).encode()
            params = {}
        query = _encode(params)
        url = f"{path}?{query}" if query else path
        return client.generic(method, url, body, content_type=content_type, headers=headers)

    def names(self) -> dict[str, str]:
        return {
            "course": str(self.portal.course.translation_key),
            "text": self.portal.text,
            "quiz": self.portal.quiz,
            "department": self.portal.department,
        }


def client_for(who: str, **kwargs: Any) -> Client:
    from django.contrib.auth import get_user_model

    client = Client(raise_request_exception=False, **kwargs)
    if who in ("learner", "mdo"):
        client.force_login(get_user_model().objects.get(username=f"hostile.{who}"))
    return client


def body_of(response: HttpResponse) -> bytes:
    if response.streaming:
        return b"".join(getattr(response, "streaming_content", []))
    return bytes(response.content)


ESCAPED = b"<>\"'&\x00\x01\x7f\xff\xc3\xed"


def assert_sound(response: HttpResponse, value: Value = "", what: str = "") -> None:
    """No 5xx, no raw reflection of ``value``, no secret in the body or the headers."""
    body = body_of(response)
    assert response.status_code < 500, f"{what}: {response.status_code} {body[:300]!r}"
    raw = _bytes(value)
    # Only a value that escaping changes shows a reflection when it comes back: a page may
    # well echo digits (a hidden "next" field holds the URL), escaped as they are.
    if any(c in raw for c in ESCAPED):
        assert raw not in body, f"{what}: the value came back raw"
        if any(c in raw for c in b"\r\n\x00"):
            assert all(raw.decode("latin-1") not in v for v in response.headers.values()), what
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    headers += "\n" + "\n".join(str(m) for m in response.cookies.values())
    for name, secret in SECRETS.items():
        assert secret.encode() not in body, f"{what}: {name} in the body"
        assert secret not in headers, f"{what}: {name} in a header"


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Everything logged during the test, at every level; no secret may be in it."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    text = (
        "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
        + caplog.text
    )
    for name, secret in SECRETS.items():
        assert secret not in text, f"{name} in the log"


# --- the tests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "family"),
    [pytest.param(n, f, id=f"{n}-{f}") for n in INTERFACES for f in FAMILIES],
)
def test_hostile_values_are_refused_cleanly(
    name: str,
    family: str,
    portal: Portal,
    hub_portal: StandInRealm,
    logs: pytest.LogCaptureFixture,
) -> None:
    interface = INTERFACES[name]
    call = Call(interface, portal, hub_portal)
    client = client_for(interface.who)
    assert_sound(call.send(client), what="the well-formed request")
    for point in interface.into:
        for value in FAMILIES[family]:
            response = call.send(client, point, value)
            assert_sound(response, value, f"{name} {point} {_bytes(value)[:40]!r}")


OTHER_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND")


@pytest.mark.parametrize("name", list(INTERFACES))
def test_wrong_methods_are_refused(
    name: str, portal: Portal, hub_portal: StandInRealm, logs: pytest.LogCaptureFixture
) -> None:
    interface = INTERFACES[name]
    call = Call(interface, portal, hub_portal)
    client = client_for(interface.who)
    for method in OTHER_METHODS:
        if method in interface.methods:
            continue
        response = call.send(client, method=method)
        assert_sound(response, what=f"{name} {method}")
        if not interface.lenient:
            assert response.status_code in REFUSED, f"{name} {method}: {response.status_code}"


# Answers that refuse (or send to sign-in): never a 2xx for what the interface does not do.
REFUSED = (301, 302, 400, 401, 403, 404, 405)


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    import base64

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}.c2lnbmF0dXJl"


def wrong_tokens(realm: StandInRealm) -> dict[str, str]:
    """Tokens the interface must refuse, by what is wrong with them."""
    import time

    now = int(time.time())
    public = OctKey.import_key(json.dumps(REALM_KEY.as_dict(private=False)).encode())
    claims = {"iss": realm.issuer, "azp": "federation-bihar", "aud": "portal", "exp": now + 60}
    return {
        "garbage": "kfk<not-a-token>",
        "three dots": "a.b.c",
        "control characters": "\x00\x01.\x1f.\x7f",
        "huge": "e" * 100_000,
        "signed by a key the realm never published": realm.access_token(key=FORGED_KEY),
        "expired": realm.access_token(exp=now - 600, iat=now - 900),
        "another realm": realm.access_token(iss="http://127.0.0.1:9/realms/other"),
        "alg none": _unsigned({"alg": "none"}, claims),
        "kid not a text": _unsigned({"alg": "RS256", "kid": 12}, claims),
        "kid a list": _unsigned({"alg": "RS256", "kid": ["realm-key"]}, claims),
        "HS256 keyed with the realm's public key": jwt.encode(
            {"alg": "HS256", "kid": "realm-key"}, claims, public, algorithms=["HS256"]
        ),
    }


@pytest.mark.parametrize("name", [n for n, i in INTERFACES.items() if i.who in ("peer", "realm")])
def test_wrong_tokens_are_refused(
    name: str, portal: Portal, hub_portal: StandInRealm, logs: pytest.LogCaptureFixture
) -> None:
    interface = INTERFACES[name]
    refused = 401 if interface.who == "peer" else 400
    client = client_for("anonymous")
    for what, token in wrong_tokens(hub_portal).items():
        if interface.who == "peer":
            for header in (f"Bearer {token}", f"Basic {token}", token):
                call = Call(interface, portal, hub_portal, headers={"Authorization": header})
                response = call.send(client)
                assert_sound(response, token, f"{name} {what}")
                assert response.status_code == refused, f"{name} {what}: {response.status_code}"
        else:
            call = Call(
                INTERFACES[name].__class__(
                    **{**INTERFACES[name].__dict__, "params": {"logout_token": token}}
                ),
                portal,
                hub_portal,
            )
            response = call.send(client)
            assert_sound(response, token, f"{name} {what}")
            assert response.status_code == refused, f"{name} {what}: {response.status_code}"
    if interface.who == "peer":
        no_header = Call(interface, portal, hub_portal, headers={"Authorization": ""})
        assert no_header.send(client).status_code == refused


BAD_SESSIONS = ("kfk<bad>\x01", "0" * 10_000, "abcdefghijklmnopqrstuvwxyz012345", "")


@pytest.mark.parametrize("name", list(INTERFACES))
def test_wrong_session_and_csrf_cookies_are_refused(
    name: str, portal: Portal, hub_portal: StandInRealm, logs: pytest.LogCaptureFixture
) -> None:
    """A forged session cookie is no session (a signed-in interface sends to sign-in, nothing
    is written), and a form post with a forged CSRF token is refused."""
    interface = INTERFACES[name]
    for cookie in BAD_SESSIONS:
        client = Client(raise_request_exception=False)
        client.cookies["sessionid"] = cookie
        client.cookies["csrftoken"] = cookie
        client.cookies["django_language"] = cookie
        response = Call(interface, portal, hub_portal).send(client)
        assert_sound(response, cookie if "<" in cookie else "", f"{name} session {cookie[:20]!r}")
        if interface.who in ("learner", "mdo"):
            assert response.status_code in (302, 403), f"{name}: {response.status_code}"
    if interface.who in ("learner", "mdo") and interface.method == "POST":
        client = client_for(interface.who, enforce_csrf_checks=True)
        client.cookies["csrftoken"] = "kfk" * 11
        response = Call(interface, portal, hub_portal, headers={"X-CSRFToken": "x" * 32}).send(
            client
        )
        assert_sound(response, what=f"{name} forged CSRF token")
        assert response.status_code == 403


SECURITY_HEADERS = (
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Content-Security-Policy",
    "Permissions-Policy",
    "Cross-Origin-Opener-Policy",
    "Strict-Transport-Security",
)
CACHED_URLS = {
    "catalogue": "/courses/",
    "catalogue with filters": "/courses/?q=notes&language=en&area=functional",
    "course page": "/courses/notes/",
}


def security_headers(response: Any) -> dict[str, str]:
    return {h: response[h] for h in SECURITY_HEADERS if response.has_header(h)}


@pytest.mark.parametrize("name", list(CACHED_URLS))
def test_a_cached_page_carries_the_security_headers_of_a_fresh_one(
    name: str, portal: Portal, hub_portal: StandInRealm
) -> None:
    client = Client()
    miss = client.get(CACHED_URLS[name])
    hit = client.get(CACHED_URLS[name])
    assert (miss.status_code, hit.status_code) == (200, 200)
    assert (miss.get("X-Page-Cache"), hit.get("X-Page-Cache")) == ("miss", "hit")
    assert {"X-Content-Type-Options", "Referrer-Policy"} <= set(security_headers(miss))
    assert security_headers(hit) == security_headers(miss)
