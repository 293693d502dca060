"""The sync's fast paths give what the plain ones gave: the compiled schema refuses what
jsonschema refused, in the same words; signatures verified by worker processes are taken only
for the very token and key; a long feed checked in parallel is applied in order with its bad
records quarantined; and PostgreSQL's set-based merge writes the catalogue the ORM path writes.

The peer is the hostile-peer tests' loopback server (its fixtures are reused here), the token
the hub realm's in Keycloak.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import transaction
from joserfc import jws

from tenant_portal.catalogue.models import CatalogueEntry, EntryCompetency, EntryLanguage
from tenant_portal.competencies.models import SubTheme
from tenant_portal.federation import signing
from tenant_portal.federation import sync as sync_module
from tenant_portal.federation.models import PeerState, Quarantined
from tenant_portal.federation.records import RecordError, compiled, validate, validator
from tenant_portal.federation.signatures import signers
from tenant_portal.federation.sync import Accepted, SyncError, sync
from tests.tenant_portal import test_federation_hostile as hostile
from tests.tenant_portal.test_federation_hostile import (
    HUB_KEY,
    NOTE_IRI,
    STRANGER_KEY,
    Peer,
    change,
    record,
    signed,
)

peer, realms = hostile.peer, hostile.realms  # the hostile-peer tests' fixtures, used here too

BAD_RECORDS: dict[str, tuple[dict[str, Any], str]] = {
    "wrong type": (record(name="not a map"), "name: 'not a map' is not of type 'object'"),
    "missing field": (record(url=None), "(record): 'url' is a required property"),
    "oversized title": (record(name={"en": "x" * 301}), "name/en: 'xxxxxxxxxx"),
    "bad language tag": (record(inLanguage=["english!"]), "inLanguage/0: 'english!' does not"),
    "bad duration": (record(timeRequired="an hour"), "timeRequired: 'an hour' does not match"),
    "extra field": (record(evil=True), "(record): Additional properties are not allowed"),
    "wrong context": (record(**{"@context": ["x", {}]}), "@context/0: 'https://schema.org'"),
    "level out of range": (
        record(teaches=[{"@type": "DefinedTerm", "@id": NOTE_IRI, "educationalLevel": 9}]),
        "teaches/0/educationalLevel: 9 is greater than the maximum of 5",
    ),
}


@pytest.mark.parametrize("case", list(BAD_RECORDS))
def test_the_compiled_schema_refuses_what_jsonschema_refuses_in_its_words(case: str) -> None:
    data, reason = BAD_RECORDS[case]
    assert not compiled().is_valid(data)
    assert next(validator().iter_errors(data), None) is not None
    with pytest.raises(RecordError) as refused:
        validate(data)
    assert str(refused.value).startswith(reason), str(refused.value)


def test_the_compiled_schema_checks_formats_whatever_jsonschema_has_installed() -> None:
    # jsonschema checks a format only when a library for it happens to be installed (moto
    # brings rfc3339-validator); the compiled schema always does.
    data = record(dateModified="yesterday")
    with pytest.raises(RecordError, match=r"^dateModified: .*date-time"):
        validate(data)
    validate(record())


def test_workers_name_the_key_that_signed_each_token_and_no_other() -> None:
    data = record()
    good, stranger = signed(data), signed(data, STRANGER_KEY)
    tampered = good[:-6] + "AAAAAA"
    keys = [
        (HUB_KEY.thumbprint(), HUB_KEY.as_dict(private=False)),
        (STRANGER_KEY.thumbprint(), STRANGER_KEY.as_dict(private=False)),
    ]
    found = signers([good, stranger, tampered, "not a token", signed(["a", "list"])], keys[:1])
    assert found == [HUB_KEY.thumbprint(), None, None, None, HUB_KEY.thumbprint()]
    assert signers([stranger], keys) == [STRANGER_KEY.thumbprint()]


def test_a_worker_verdict_counts_only_for_the_key_verify_would_pick() -> None:
    from joserfc.jwk import KeySet

    data = record()
    token = signed(data)
    hub_keys = KeySet.import_key_set({"keys": [HUB_KEY.as_dict(private=False)]})
    with signing.key_ring() as ring:
        ring.remember([token], [STRANGER_KEY.thumbprint()])  # a wrong memo is not trusted
        assert not ring.verified(token, hub_keys, "hub-key")
        ring.remember([token], [HUB_KEY.thumbprint()])
        assert ring.verified(token, hub_keys, "hub-key")
        assert not ring.verified(token, hub_keys, 7)  # a kid that is not a string
        assert not ring.verified(signed(record()), hub_keys, "hub-key")  # another token


def feed(server: Peer, pages: list[list[dict[str, Any]]], *, failing_after: int = -1) -> None:
    """Serve ``pages`` as they are (the last one's ``last`` is the newest position); a request
    after ``failing_after`` answers 500."""
    every = [c for page in pages for c in page]
    newest = every[-1]["position"]

    def route(params: dict[str, str]) -> tuple[int, bytes, float]:
        import json

        after = int(params.get("after", "0"))
        if after == failing_after:
            return 500, b'{"error": "boom"}', 0.0
        todo = next((page for page in pages if page[0]["position"] > after), [])
        body = {"changes": todo, "next": todo[-1]["position"] if todo else after, "last": newest}
        return 200, json.dumps(body).encode(), 0.0

    server.routes["/federation/v1/changes"] = route


def good_change(position: int) -> dict[str, Any]:
    data = record(name={"en": f"Course {position}"})
    return change(position, signed(data), data)


@pytest.mark.django_db
def test_a_long_feed_is_checked_on_other_cores_and_applied_in_order(
    peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = sync_module.PARALLEL_FROM
    pages = [[good_change(p * size + n + 1) for n in range(size)] for p in range(3)]
    tampered, stranger = record(), record()
    pages[1][5] = change(pages[1][5]["position"], signed(tampered)[:-6] + "AAAAAA", tampered)
    pages[2][7] = change(pages[2][7]["position"], signed(stranger, STRANGER_KEY), stranger)
    feed(peer, pages)
    records = {c["record"].encode() for page in pages for c in page}
    verified_here = 0
    deserialize = jws.deserialize_compact

    def counting(value: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal verified_here
        verified_here += value in records  # a record's signature, checked in this process
        return deserialize(value, *args, **kwargs)

    monkeypatch.setattr(signing.jws, "deserialize_compact", counting)
    result = sync("hub", limit=size)
    assert (result.applied, result.quarantined, result.pages) == (3 * size - 2, 2, 3)
    # The first page's signatures are verified here (no key is known before it), the later
    # pages' by the workers but for the tampered token, verified here again to word the reason
    # (the stranger's key is refused before any verifying).
    assert verified_here == size + 1
    reasons = dict(Quarantined.objects.values_list("position", "reason"))
    assert sorted(reasons) == [size + 6, 2 * size + 8]
    assert reasons[size + 6].startswith("signature: the signature does not verify")
    assert reasons[2 * size + 8] == "signature: key 'hub-key-2' is not one of the origin's keys"
    assert PeerState.objects.get(peer="hub").cursor == 3 * size
    names = {entry.name["en"] for entry in CatalogueEntry.objects.all()}
    assert names == {f"Course {n}" for n in range(1, 3 * size + 1) if n not in reasons}


@pytest.mark.django_db
def test_a_page_that_fails_to_arrive_leaves_the_pages_before_it_applied(
    peer: Peer,
) -> None:
    pages = [[good_change(p * 3 + n + 1) for n in range(3)] for p in range(3)]
    feed(peer, pages, failing_after=3)
    with pytest.raises(SyncError, match="the feed answered 500"):
        sync("hub", limit=3)
    assert PeerState.objects.get(peer="hub").cursor == 3
    assert CatalogueEntry.objects.count() == 3


def accepted_items(me: str) -> list[Accepted]:
    """Records as ``check`` accepts them: new, withdrawn, unsubscribed, newer, older, the same
    version again, our own, a stale duplicate, one with a competency twice."""
    terms = list(SubTheme.objects.filter(retired=False).values_list("iri", flat=True)[:3])
    courses = list(CatalogueEntry.objects.order_by("pk").values_list("uuid", flat=True))
    items = []

    def item(course: uuid.UUID, origin: str = "hub", wanted: bool = True, **fields: Any) -> None:
        data = record(course, origin, **fields)
        items.append(Accepted(change(len(items) + 1, "token", data), data, wanted))

    teach = [{"@type": "DefinedTerm", "@id": t, "educationalLevel": 2} for t in terms]
    item(uuid.uuid4(), teaches=[*teach, {**teach[0], "educationalLevel": 4}])
    item(uuid.uuid4(), inLanguage=["hi", "en"], name={"hi": "नया", "en": "New"})
    item(uuid.uuid4(), creativeWorkStatus="Withdrawn")
    item(uuid.uuid4(), wanted=False)
    item(courses[0], version=5, name={"en": "Newer"}, teaches=teach[1:])  # held at 2
    item(courses[1], version=1, name={"en": "Older"})  # held at 2: changes nothing
    item(courses[2], version=2, name={"en": "Same version, again"})
    item(courses[3], me, version=9, name={"en": "Not yours"})  # our own course
    item(courses[0], version=4, name={"en": "Stale duplicate"})
    return items


def catalogue() -> dict[str, Any]:
    """The catalogue's rows by course, without their ids and datestamps, and their filters."""
    rows = {}
    for row in CatalogueEntry.objects.values():
        del row["id"], row["datestamp"]
        rows[str(row["uuid"])] = row
    languages = sorted(EntryLanguage.objects.values_list("entry__uuid", "code"))
    terms = sorted(EntryCompetency.objects.values_list("entry__uuid", "sub_theme__iri", "level"))
    return {"rows": rows, "languages": languages, "competencies": terms}


@pytest.mark.django_db
@pytest.mark.usefixtures("peer")
def test_the_postgresql_merge_writes_the_catalogue_the_orm_path_writes() -> None:
    from django.conf import settings

    me = settings.PORTAL.federation_code
    known = sync_module._known_competencies()
    terms = list(SubTheme.objects.filter(retired=False)[:2])
    for number, origin in enumerate(["hub", "hub", "hub", me]):
        entry = CatalogueEntry.objects.create(
            uuid=uuid.uuid4(),
            iri=f"https://{origin}.example.org/courses/{number}",
            origin=origin,
            origin_name=origin,
            provider=origin,
            name={"en": f"Held {number}"},
            languages=["en", "hi"],
            version=2,
            modified=datetime(2026, 1, 1, tzinfo=UTC),
            hidden=True,
            featured=True,
            local_name={"hi": "अपना"},
        )
        EntryLanguage.objects.create(entry=entry, code="hi")
        for term in terms:
            EntryCompetency.objects.create(entry=entry, sub_theme=term, level=1)
    items = accepted_items(me)

    class Undo(Exception):
        pass

    results = []
    for write in (sync_module._merge_records, sync_module._apply_records):
        try:
            with transaction.atomic():
                written = write(sync_module._latest(items), known)
                results.append(([i.change["position"] for i in written], catalogue()))
                raise Undo
        except Undo:
            pass
    (merged_order, merged), (orm_order, orm) = results
    assert merged_order == orm_order == [1, 2, 3, 4, 5, 7]
    assert merged == orm
    newer = next(r for r in merged["rows"].values() if r["name"] == {"en": "Newer"})
    assert newer["hidden"] and newer["featured"] and newer["local_name"] == {"hi": "अपना"}
