"""The change feed of one instance: signed record v1, tokens of the hub realm only, cursors,
ETags, commit order, and key rotation."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client
from joserfc import jws
from joserfc.jwk import KeySet

from infra.targets.local.keycloak import LocalKeycloak
from tenant_portal.catalogue.models import CatalogueIndexPage
from tenant_portal.federation.changes import append
from tenant_portal.federation.models import Change, SigningKey
from tenant_portal.federation.records import validate
from tenant_portal.federation.signing import published_keys, rotate_key
from tests.tenant_portal.conftest import set_portal
from tests.tenant_portal.federation_env import Realms, hub_realms, master_token
from tests.tenant_portal.learning import add_course, prepare_site

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalogue() -> CatalogueIndexPage:
    return prepare_site()


@pytest.fixture(scope="module")
def realms(keycloak: LocalKeycloak) -> Iterator[Realms]:
    with hub_realms(keycloak, "bihar") as realms:
        yield realms


@pytest.fixture
def federated(settings: Any, realms: Realms) -> Realms:
    set_portal(
        settings,
        federation={
            "code": "dev",
            "isHub": True,
            "hub": realms.hub,
            "hubIssuer": realms.issuer,
            "peers": [],
            "members": [
                {
                    "code": realms.realm("bihar"),
                    "name": "Bihar",
                    "tenantType": "state",
                    "portalUrl": "http://127.0.0.1:9",
                    "keysUrl": "http://127.0.0.1:9/federation/v1/keys",
                    "publish": False,
                }
            ],
        },
    )
    return realms


def record_in(change: Change) -> dict[str, Any]:
    verified = jws.deserialize_compact(change.jws, KeySet.import_key_set(published_keys()))
    return dict(json.loads(verified.payload))


def test_publishing_a_course_appends_its_signed_record_v1(catalogue: CatalogueIndexPage) -> None:
    page = add_course(catalogue, "notes")
    change = Change.objects.get()
    assert (change.kind, change.origin, change.uuid) == ("upsert", "dev", page.translation_key)
    record = record_in(change)
    validate(record)
    assert record["@id"] == f"https://learn.example.org/courses/{page.translation_key}"
    assert record["name"] == {"en": "Noting and drafting notes", "hi": "टिप्पण और प्रारूपण notes"}
    assert record["inLanguage"] == ["en", "hi"] and record["timeRequired"] == "PT1H30M"
    assert {t["educationalLevel"] for t in record["teaches"]} == {2, 3}
    assert record["creativeWorkStatus"] == "Published"

    page.unpublish()
    change = Change.objects.get()  # only the course's latest change is kept
    assert change.kind == "tombstone" and change.position == 3  # publish of hi was 2
    assert record_in(change)["creativeWorkStatus"] == "Withdrawn"


def test_an_internal_course_stays_home(catalogue: CatalogueIndexPage) -> None:
    page = add_course(catalogue, "internal-only")
    page.internal = True
    page.save_revision().publish()
    # It was offered before it became internal: the feed now withdraws it.
    assert Change.objects.get().kind == "tombstone"
    hidden = add_course(catalogue, "never-offered")
    hidden.internal = True
    Change.objects.filter(uuid=hidden.translation_key).delete()
    hidden.save_revision().publish()
    assert not Change.objects.filter(uuid=hidden.translation_key).exists()


def feed(token: str | None, query: str = "", **headers: str) -> Any:
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return Client(headers=headers).get(f"/federation/v1/changes{query}")


def test_the_feed_takes_only_tokens_of_the_hub_realm(
    catalogue: CatalogueIndexPage, federated: Realms, keycloak: LocalKeycloak
) -> None:
    add_course(catalogue, "fed")
    assert feed(None).status_code == 401
    assert feed("not-a-jwt").status_code == 401
    assert "hub realm" in feed(None).json()["error"]
    wrong_realm = feed(master_token(keycloak))
    assert wrong_realm.status_code == 401 and wrong_realm["WWW-Authenticate"].startswith("Bearer")
    tampered = federated.token("bihar")[:-4] + "AAAA"
    assert feed(tampered).status_code == 401

    good = feed(federated.token("bihar"), "?after=0&limit=10")
    assert good.status_code == 200
    body = good.json()
    assert [c["position"] for c in body["changes"]] == [2] and body["next"] == 2
    assert body["last"] == 2 and body["changes"][0]["kind"] == "upsert"
    again = feed(federated.token("bihar"), "?after=0&limit=10", if_none_match=good["ETag"])
    assert again.status_code == 304
    assert feed(federated.token("bihar"), "?after=2").json()["changes"] == []


@pytest.mark.parametrize(
    "query", ["?after=-1", "?after=abc", "?after=1e3", "?limit=0", "?limit=501", "?after=%00"]
)
def test_a_malformed_cursor_is_a_clear_400(federated: Realms, query: str) -> None:
    response = feed(federated.token("bihar"), query)
    assert response.status_code == 400
    assert "must be a whole number" in response.json()["error"]


def test_rotation_keeps_an_old_key_while_the_feed_serves_what_it_signed(
    catalogue: CatalogueIndexPage,
) -> None:
    first = add_course(catalogue, "one")
    old = SigningKey.objects.get().kid
    rotate_key()
    kids = {k["kid"] for k in published_keys()["keys"]}
    assert old in kids and len(kids) == 2
    record_in(Change.objects.get(uuid=first.translation_key))  # still verifies
    first.save_revision().publish()  # re-signed with the new key
    assert {k["kid"] for k in published_keys()["keys"]} == kids - {old}
    assert all("d" not in key for key in published_keys()["keys"])  # never a private part


@pytest.mark.django_db(transaction=True)
def test_positions_follow_commit_order(catalogue: CatalogueIndexPage) -> None:
    """A transaction that appends first but commits last must not end up behind a reader's
    cursor: the second append waits for the first to commit, so it numbers after it."""
    import uuid as uuidlib

    order: list[str] = []

    def slow() -> None:
        with transaction.atomic():
            append(course=uuidlib.uuid4(), origin="x", kind="upsert", version=1, kid="", jws="a")
            time.sleep(1.5)
            order.append("slow commits")
        connection.close()

    first = threading.Thread(target=slow)
    first.start()
    time.sleep(0.5)
    with transaction.atomic():
        change = append(
            course=uuidlib.uuid4(), origin="x", kind="upsert", version=1, kid="", jws="b"
        )
        order.append("fast appended")
    first.join()
    slow_change = Change.objects.get(jws="a")
    assert order == ["slow commits", "fast appended"]
    assert slow_change.position < change.position
