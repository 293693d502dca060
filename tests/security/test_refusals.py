"""Bad input that once crashed (a generic 500 page) is refused with the protocol's own answer.

OAI-PMH arguments holding characters XML cannot carry get ``badVerb``, ``badArgument`` or
``badResumptionToken``, and the error never echoes them raw (lxml refuses them in XML text).
A hostile JSON body at ``/xapi/statements`` (nested past any statement's depth, numbers JSON
or PostgreSQL cannot hold, text PostgreSQL cannot store, the wrong encoding or content type)
gets a 400.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client
from lxml import etree

from tenant_portal.oai.protocol import NOT_XML
from tests.security.realm import StandInRealm
from tests.tenant_portal.test_oai import NS, valid

pytestmark = pytest.mark.django_db

GOOD_ID = "oai:karmayogi:4f7c1f0e-4d55-4d0a-9d7f-1c2b3a4d5e6f"

# (arguments, the error code the protocol gives)
OAI_CASES: dict[str, tuple[dict[str, str], str]] = {
    "NUL in verb": ({"verb": "Identify\x00"}, "badVerb"),
    "DEL as verb": ({"verb": "\x7f"}, "badVerb"),
    "NUL in identifier": (
        {"verb": "GetRecord", "identifier": "oai:karmayogi:\x00", "metadataPrefix": "oai_dc"},
        "badArgument",
    ),
    "SOH in metadataPrefix": (
        {"verb": "GetRecord", "identifier": GOOD_ID, "metadataPrefix": "oai_dc\x01"},
        "badArgument",
    ),
    "US in set": (
        {"verb": "ListRecords", "metadataPrefix": "oai_dc", "set": "\x1f"},
        "badArgument",
    ),
    "NUL in from": (
        {"verb": "ListIdentifiers", "metadataPrefix": "lom", "from": "2026-01-01\x00"},
        "badArgument",
    ),
    "NUL in resumptionToken": (
        {"verb": "ListRecords", "resumptionToken": "\x00abc"},
        "badResumptionToken",
    ),
    "VT in identifier of ListMetadataFormats": (
        {"verb": "ListMetadataFormats", "identifier": "\x0b"},
        "badArgument",
    ),
    "NUL in an argument's name": (
        {"verb": "ListSets", "resumptionToken\x00": "<x>"},
        "badArgument",
    ),
    "non-character U+FFFE in set": (
        {"verb": "ListIdentifiers", "metadataPrefix": "oai_dc", "set": "a\ufffe"},
        "badArgument",
    ),
    "oversized identifier": (
        {
            "verb": "GetRecord",
            "identifier": "oai:karmayogi:" + "x" * 100_000,
            "metadataPrefix": "oai_dc",
        },
        "badArgument",
    ),
}


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("case", list(OAI_CASES))
def test_oai_refuses_characters_xml_cannot_carry(case: str, method: str) -> None:
    arguments, code = OAI_CASES[case]
    response = getattr(Client(raise_request_exception=False), method)("/oai", arguments)
    assert response.status_code == 200, response.content[:300]
    document = valid(etree.fromstring(response.content))
    errors = document.findall("o:error", NS)
    assert [e.get("code") for e in errors] == [code]
    if code in ("badVerb", "badArgument"):  # the protocol: the request element has no attributes
        request = document.find("o:request", NS)
        assert request is not None and not request.attrib
    hostile = [v for v in (*arguments, *arguments.values()) if NOT_XML.search(v) or len(v) > 2048]
    assert hostile and not any(v.encode() in response.content for v in hostile)
    assert not re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", response.content)


# --- xAPI bodies -----------------------------------------------------------------------------


def statement(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "actor": {
            "objectType": "Agent",
            "account": {"homePage": "https://learn.bihar.example", "name": "ab" * 16},
        },
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
        "object": {"objectType": "Activity", "id": "https://learn.bihar.example/courses/x"},
        "context": {"platform": "bihar"},
    }
    body.update(over)
    return body


def text(value: Any) -> bytes:
    return json.dumps(value).encode()


def deep(levels: int) -> Any:
    value: Any = []
    for _ in range(levels):
        value = [value]
    return value


BODY_CASES: dict[str, tuple[bytes, str]] = {
    "100,000 nested arrays": (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    "100,000 nested arrays, unclosed": (b"[" * 100_000, "application/json"),
    "100,000 nested objects": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "application/json"),
    "nesting deeper than a statement in an extension": (
        text(
            statement(
                context={"platform": "bihar", "extensions": {"https://x.example/e": deep(400)}}
            )
        ),
        "application/json",
    ),
    "a 5,000 digit integer": (
        text(statement(result={"score": {"raw": 1}})).replace(
            b'"raw": 1', b'"raw": ' + b"9" * 5000
        ),
        "application/json",
    ),
    "a float beyond double": (
        text(statement(result={"score": {"raw": 1}})).replace(b'"raw": 1', b'"raw": 1e999999'),
        "application/json",
    ),
    "NaN": (
        text(statement(result={"score": {"raw": 1}})).replace(b'"raw": 1', b'"raw": NaN'),
        "application/json",
    ),
    "-Infinity": (
        text(statement(result={"score": {"min": 1}})).replace(b'"min": 1', b'"min": -Infinity'),
        "application/json",
    ),
    "invalid UTF-8": (text(statement()).replace(b"bihar", b"bi\xff\xfehar"), "application/json"),
    "a lone surrogate": (
        text(
            statement(
                verb={"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en": "x"}}
            )
        ).replace(b'"x"', b'"\\ud800"'),
        "application/json",
    ),
    "NUL in a text": (
        text(
            statement(
                verb={"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en": "a\x00b"}}
            )
        ),
        "application/json",
    ),
    "form content type": (text(statement()), "application/x-www-form-urlencoded"),
    "multipart content type": (text(statement()), "multipart/form-data; boundary=xyz"),
    "text content type": (text(statement()), "text/plain"),
}


@pytest.mark.parametrize("case", list(BODY_CASES))
def test_xapi_refuses_a_hostile_body_with_400(case: str, hub_portal: StandInRealm) -> None:
    body, content_type = BODY_CASES[case]
    client = Client(raise_request_exception=False)
    response = client.post(
        "/xapi/statements",
        body,
        content_type=content_type,
        headers={
            "Authorization": f"Bearer {hub_portal.access_token()}",
            "X-Experience-API-Version": "1.0.3",
        },
    )
    assert response.status_code == 400, response.content[:500]
    assert set(response.json()) == {"error"}


def test_xapi_still_stores_a_good_statement(hub_portal: StandInRealm) -> None:
    response = Client().post(
        "/xapi/statements",
        text(statement()),
        content_type="application/json; charset=utf-8",
        headers={
            "Authorization": f"Bearer {hub_portal.access_token()}",
            "X-Experience-API-Version": "1.0.3",
        },
    )
    assert response.status_code == 200, response.content
    assert len(response.json()) == 1
