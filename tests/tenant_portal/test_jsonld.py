"""schema.org on course pages: the record v1 a search engine or any JSON-LD reader finds in
the page's head, the same record the feed signs."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client
from joserfc import jws
from joserfc.jwk import KeySet
from lxml import html

from tenant_portal.catalogue.models import CatalogueEntry, CatalogueIndexPage
from tenant_portal.federation.models import Change
from tenant_portal.federation.records import SCHEMA_ID, validate
from tenant_portal.federation.signing import published_keys
from tests.tenant_portal.learning import PROVIDER, add_course, make_user, prepare_site

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalogue() -> CatalogueIndexPage:
    return prepare_site()


def jsonld_of(page: bytes) -> list[dict[str, Any]]:
    blocks = html.fromstring(page).xpath('//head/script[@type="application/ld+json"]/text()')
    return [json.loads(text) for text in blocks]


def signed_record(course_uuid: uuid.UUID) -> dict[str, Any]:
    change = Change.objects.get(uuid=course_uuid)
    verified = jws.deserialize_compact(change.jws, KeySet.import_key_set(published_keys()))
    return dict(json.loads(verified.payload))


@pytest.mark.parametrize("signed_in", [False, True])
def test_a_course_page_carries_its_signed_record_as_json_ld(
    catalogue: CatalogueIndexPage, signed_in: bool
) -> None:
    page = add_course(catalogue, "notes")
    client = Client(headers={"accept-language": "en"})
    if signed_in:
        client.force_login(make_user("reader"))
    (record,) = jsonld_of(client.get(page.url).content)
    validate(record)  # the record v1.1 profile of schema.org Course
    assert record["@type"] == "Course" and record["@context"][0] == "https://schema.org"
    # v1.1: the provider's name per language beside the plain one, a language map in JSON-LD.
    assert record["schemaVersion"] == SCHEMA_ID and record["provider"]["nameMap"] == PROVIDER
    assert record["provider"]["name"] == PROVIDER["en"]
    assert record["@context"][1]["nameMap"] == {"@id": "schema:name", "@container": "@language"}
    assert record == signed_record(page.translation_key)


def test_markup_in_a_title_cannot_end_the_script_block(catalogue: CatalogueIndexPage) -> None:
    title = "Ethics </script><script>alert(1)</script> & <b>you</b>"
    page = add_course(catalogue, "tricky", title={"en": title})
    body = Client(headers={"accept-language": "en"}).get(page.url).content
    head = body.split(b"</head>")[0]
    assert b"alert(1)</script>" not in head
    (record,) = jsonld_of(body)
    assert record["name"]["en"] == title


def test_a_federated_course_record_page_names_its_origin_as_provider(
    catalogue: CatalogueIndexPage,
) -> None:
    local = CatalogueEntry.objects.get(page=add_course(catalogue, "local"))
    course = uuid.uuid4()
    iri = f"https://learn.bihar.example/courses/{course}"
    CatalogueEntry.objects.create(
        uuid=course,
        iri=iri,
        origin="bihar",
        origin_name="Bihar",
        provider="Bihar Institute of Public Administration",
        name={"en": "Flood relief logistics", "hi": "बाढ़ राहत रसद"},
        description={"en": "Planning relief camps."},
        languages=["en", "hi"],
        duration_minutes=45,
        competencies=local.competencies,
        url="https://learn.bihar.example/courses/flood-relief/",
        modified=datetime(2026, 11, 1, tzinfo=UTC),
    )
    response = Client(headers={"accept-language": "en"}).get(f"{catalogue.url}{course}/")
    assert response.status_code == 200
    (record,) = jsonld_of(response.content)
    validate(record)
    assert record["@id"] == iri and record["url"].startswith("https://learn.bihar.example/")
    assert record["provider"]["identifier"] == "bihar"
    assert record["provider"]["url"] == "https://learn.bihar.example"
