"""OAI-PMH 2.0 at /oai: every verb and error answered as the protocol says, every response valid
against the official schemas (vendored in tenant_portal/oai/schemas), and a real harvester
(Sickle) reading the catalogue through a live server, also while it changes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from lxml import etree
from sickle import Sickle
from sickle.oaiexceptions import NoRecordsMatch

from tenant_portal.catalogue.models import (
    CatalogueEntry,
    CatalogueIndexPage,
    EntryCompetency,
    EntryLanguage,
)
from tenant_portal.catalogue.services import term_snapshot
from tenant_portal.competencies.models import SubTheme
from tenant_portal.federation.models import Change
from tests.tenant_portal.conftest import set_portal
from tests.tenant_portal.learning import add_course, prepare_site

SCHEMAS = Path(__file__).resolve().parents[2] / "tenant_portal" / "oai" / "schemas"
OAI = "{http://www.openarchives.org/OAI/2.0/}"
# A course no portal holds (fixed, so every parallel worker collects the same test ids).
UNKNOWN_COURSE = uuid.UUID("5b1f1c9e-3f0a-4d5e-9a51-000000000000")
NS = {
    "o": "http://www.openarchives.org/OAI/2.0/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "oai_dc": "http://www.openarchives.org/OAI/2.0/oai_dc/",
    "lom": "http://ltsc.ieee.org/xsd/LOM",
}
# The schemas' own imports name their official URLs; they resolve to the copies, never the net.
LOCAL = {
    "http://www.w3.org/2001/03/xml.xsd": "xml.xsd",
    "http://www.w3.org/2001/xml.xsd": "xml.xsd",
    "http://dublincore.org/schemas/xmls/simpledc20021212.xsd": "simpledc20021212.xsd",
}


class LocalCopies(etree.Resolver):
    def resolve(self, url: str, pubid: str, context: Any) -> Any:
        if url in LOCAL:
            return self.resolve_filename(str(SCHEMAS / LOCAL[url]), context)
        assert not url.startswith(("http:", "https:")), f"a schema asked for {url}"
        return None


@cache
def schema(name: str) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(LocalCopies())
    return etree.XMLSchema(etree.parse(str(SCHEMAS / name), parser))


def valid(document: etree._Element) -> etree._Element:
    """Check the response against OAI-PMH.xsd and each record's metadata against its format's
    schema (the OAI-PMH schema skips what is inside <metadata>)."""
    envelope = schema("OAI-PMH.xsd")
    assert envelope.validate(document), envelope.error_log
    for metadata in document.iterfind(".//o:metadata", NS):
        (content,) = list(metadata)
        name = {"oai_dc": "oai_dc.xsd", "lom": "lom/lom-karmayogi.xsd"}[
            "oai_dc" if content.tag.startswith("{" + NS["oai_dc"]) else "lom"
        ]
        record_schema = schema(name)
        assert record_schema.validate(etree.ElementTree(content)), record_schema.error_log
    return document


def oai(method: str = "get", **arguments: Any) -> etree._Element:
    client = Client()
    response = getattr(client, method)("/oai", arguments)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/xml; charset=utf-8"
    assert "no-cache" in response["Cache-Control"] and "X-Page-Cache" not in response
    return valid(etree.fromstring(response.content))


def error_code(document: etree._Element) -> str:
    errors = document.findall("o:error", NS)
    assert len(errors) == 1, etree.tostring(document)
    return str(errors[0].get("code"))


def identifiers(document: etree._Element) -> list[str]:
    return [str(x.text) for x in document.iterfind(".//o:header/o:identifier", NS)]


@pytest.fixture
def catalogue() -> CatalogueIndexPage:
    return prepare_site()


def terms() -> list[SubTheme]:
    return list(SubTheme.objects.filter(retired=False).select_related("theme__area").order_by("pk"))


def arrival(
    origin: str = "bihar",
    languages: tuple[str, ...] = ("hi", "en"),
    area: str | None = None,
    **fields: Any,
) -> CatalogueEntry:
    """A course that came by federation, with its language and competency rows, as a sync
    writes them."""
    course = uuid.uuid4()
    candidates = [t for t in terms() if area is None or t.theme.area.code == area]
    term = candidates[0]
    values: dict[str, Any] = {
        "uuid": course,
        "iri": f"https://learn.{origin}.example/courses/{course}",
        "origin": origin,
        "origin_name": f"{origin.title()} Institute",
        "provider": f"{origin.title()} Institute of Public Administration",
        "name": {code: f"Course {code} {course.hex[:6]}" for code in languages},
        "description": {code: f"About {code}" for code in languages},
        "languages": list(languages),
        "duration_minutes": 90,
        "competencies": [term_snapshot(term, 3)],
        "url": f"https://learn.{origin}.example/courses/x/",
        "version": 2,
        "modified": timezone.now() - timedelta(days=30),
        **fields,
    }
    entry = CatalogueEntry.objects.create(**values)
    EntryLanguage.objects.bulk_create([EntryLanguage(entry=entry, code=c) for c in languages])
    EntryCompetency.objects.create(entry=entry, sub_theme=term, level=3)
    return entry


def oai_id(entry: CatalogueEntry) -> str:
    return f"oai:karmayogi:{entry.uuid}"


# --- the verbs -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_identify_describes_the_repository(settings: Any) -> None:
    set_portal(settings, portal_url="https://learn.bihar.example", admin_email="oai@bihar.example")
    body = oai(verb="Identify").find("o:Identify", NS)
    assert body is not None
    assert body.findtext("o:baseURL", namespaces=NS) == "https://learn.bihar.example/oai"
    assert body.findtext("o:protocolVersion", namespaces=NS) == "2.0"
    assert body.findtext("o:adminEmail", namespaces=NS) == "oai@bihar.example"
    assert body.findtext("o:deletedRecord", namespaces=NS) == "persistent"
    assert body.findtext("o:granularity", namespaces=NS) == "YYYY-MM-DDThh:mm:ssZ"
    assert body.find("o:description", NS) is None  # "karmayogi" is no repositoryIdentifier


@pytest.mark.django_db
def test_post_is_answered_like_get(catalogue: CatalogueIndexPage) -> None:
    entry = arrival()
    got = oai(verb="GetRecord", identifier=oai_id(entry), metadataPrefix="oai_dc")
    posted = oai("post", verb="GetRecord", identifier=oai_id(entry), metadataPrefix="oai_dc")
    assert identifiers(got) == identifiers(posted) == [oai_id(entry)]


@pytest.mark.django_db
def test_both_formats_carry_the_course_record(catalogue: CatalogueIndexPage) -> None:
    entry = arrival(languages=("hi", "en"))
    term = entry.competencies[0]
    dc = oai(verb="GetRecord", identifier=oai_id(entry), metadataPrefix="oai_dc")
    titles = {
        t.get("{http://www.w3.org/XML/1998/namespace}lang"): t.text
        for t in dc.iterfind(".//dc:title", NS)
    }
    assert titles == entry.name
    assert [x.text for x in dc.iterfind(".//dc:language", NS)] == ["hi", "en"]
    assert {x.text for x in dc.iterfind(".//dc:identifier", NS)} == {entry.iri, entry.url}
    assert dc.findtext(".//dc:creator", namespaces=NS) == entry.provider
    assert (
        dc.findtext(".//dc:rights", namespaces=NS) == "https://creativecommons.org/licenses/by/4.0/"
    )
    assert term["iri"] in {x.text for x in dc.iterfind(".//dc:subject", NS)}

    lom = oai(verb="GetRecord", identifier=oai_id(entry), metadataPrefix="lom")
    assert lom.findtext(".//lom:general/lom:identifier/lom:entry", namespaces=NS) == entry.iri
    assert lom.findtext(".//lom:typicalLearningTime/lom:duration", namespaces=NS) == "PT1H30M"
    assert lom.findtext(".//lom:technical/lom:duration/lom:duration", namespaces=NS) == "PT1H30M"
    (classification,) = lom.iterfind(".//lom:classification", NS)
    assert classification.findtext("lom:purpose/lom:value", namespaces=NS) == "competency"
    ids = [x.text for x in classification.iterfind(".//lom:taxon/lom:id", NS)]
    assert len(ids) == 3 and ids[-1] == term["iri"] and ids[0].endswith(f"/{term['area']}")
    assert "level 3" in classification.findtext("lom:description/lom:string", namespaces=NS)


@pytest.mark.django_db
def test_metadata_formats_and_sets(catalogue: CatalogueIndexPage) -> None:
    entry = arrival(origin="bihar", languages=("hi",), area="domain")
    arrival(origin="mauritius", languages=("en", "fr"), area="behavioural")
    formats = oai(verb="ListMetadataFormats", identifier=oai_id(entry))
    assert [x.text for x in formats.iterfind(".//o:metadataPrefix", NS)] == ["oai_dc", "lom"]
    specs = [x.text for x in oai(verb="ListSets").iterfind(".//o:setSpec", NS)]
    assert set(specs) == {
        "origin:bihar",
        "origin:mauritius",
        "area:domain",
        "area:behavioural",
        "language:hi",
        "language:en",
        "language:fr",
    }
    header = oai(verb="GetRecord", identifier=oai_id(entry), metadataPrefix="lom").find(
        ".//o:header", NS
    )
    assert header is not None
    assert [x.text for x in header.iterfind("o:setSpec", NS)] == [
        "origin:bihar",
        "area:domain",
        "language:hi",
    ]


@pytest.mark.django_db
def test_each_kind_of_set_selects_its_items(catalogue: CatalogueIndexPage) -> None:
    bihar = arrival(origin="bihar", languages=("hi",), area="domain")
    mauritius = arrival(origin="mauritius", languages=("fr",), area="behavioural")
    for spec, expected in [
        ("origin:bihar", [bihar]),
        ("area:behavioural", [mauritius]),
        ("language:hi", [bihar]),
    ]:
        listed = oai(verb="ListIdentifiers", metadataPrefix="oai_dc", set=spec)
        assert identifiers(listed) == [oai_id(e) for e in expected]
    assert error_code(oai(verb="ListRecords", metadataPrefix="oai_dc", set="language:xx")) == (
        "noRecordsMatch"
    )


# --- which courses are items, and deleted records ----------------------------------------


@pytest.mark.django_db
def test_public_internal_and_withdrawn_courses(catalogue: CatalogueIndexPage) -> None:
    public = add_course(catalogue, "public")
    became_internal = add_course(catalogue, "later-internal")
    became_internal.internal = True
    became_internal.save_revision().publish()
    never = add_course(catalogue, "never-offered")
    never.internal = True
    Change.objects.filter(uuid=never.translation_key).delete()  # as if internal from the start
    never.save_revision().publish()
    unpublished = add_course(catalogue, "unpublished")
    unpublished.unpublish()
    hidden = arrival()
    hidden.hidden = True
    hidden.save(update_fields=["hidden"])

    listed = oai(verb="ListRecords", metadataPrefix="oai_dc")
    headers = {
        h.findtext("o:identifier", namespaces=NS): h.get("status")
        for h in listed.iterfind(".//o:header", NS)
    }
    key = "oai:karmayogi:{}".format
    assert headers == {
        key(public.translation_key): None,
        key(became_internal.translation_key): "deleted",
        key(unpublished.translation_key): "deleted",
        oai_id(hidden): "deleted",
    }
    deleted = listed.xpath("//o:record[o:header/@status='deleted']", namespaces=NS)
    assert deleted and all(r.find("o:metadata", NS) is None for r in deleted)
    missing = oai(verb="GetRecord", identifier=key(never.translation_key), metadataPrefix="lom")
    assert error_code(missing) == "idDoesNotExist"


@pytest.mark.django_db
def test_a_local_hide_moves_the_datestamp_and_unhide_brings_the_record_back(
    catalogue: CatalogueIndexPage,
) -> None:
    entry = arrival()
    CatalogueEntry.objects.filter(pk=entry.pk).update(datestamp=timezone.now() - timedelta(days=3))
    before = oai(verb="GetRecord", identifier=oai_id(entry), metadataPrefix="oai_dc")
    entry.refresh_from_db()
    entry.hidden = True
    entry.save(update_fields=["hidden"])
    after = oai(verb="GetRecord", identifier=oai_id(entry), metadataPrefix="oai_dc")
    stamp = "o:GetRecord/o:record/o:header/o:datestamp"
    assert after.findtext(stamp, namespaces=NS) > before.findtext(stamp, namespaces=NS)
    assert after.find(".//o:header", NS).get("status") == "deleted"
    CatalogueEntry.objects.filter(pk=entry.pk).update(hidden=False)  # update() moves it too
    again = oai(verb="GetRecord", identifier=oai_id(entry), metadataPrefix="oai_dc")
    assert again.find(".//o:header", NS).get("status") is None


@pytest.mark.django_db
def test_bulk_writes_move_the_datestamp(catalogue: CatalogueIndexPage) -> None:
    """The federation sync writes rows with bulk_create and bulk_update (federation/sync.py)."""
    entry = arrival()
    old = timezone.now() - timedelta(days=5)
    CatalogueEntry.objects.filter(pk=entry.pk).update(datestamp=old)
    entry.refresh_from_db()
    entry.version = 3
    CatalogueEntry.objects.bulk_update([entry], ["version"])
    entry.refresh_from_db()
    assert entry.datestamp > old + timedelta(days=4)


# --- from / until ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_from_and_until_in_days_and_seconds(catalogue: CatalogueIndexPage) -> None:
    old, new = arrival(), arrival()
    CatalogueEntry.objects.filter(pk=old.pk).update(
        datestamp=datetime(2026, 1, 10, 8, 0, 5, tzinfo=UTC)
    )
    CatalogueEntry.objects.filter(pk=new.pk).update(
        datestamp=datetime(2026, 1, 12, 8, 0, 5, tzinfo=UTC)
    )

    def listed(**dates: str) -> list[str]:
        document = oai(verb="ListIdentifiers", metadataPrefix="oai_dc", **dates)
        return [] if document.find("o:error", NS) is not None else identifiers(document)

    assert listed(**{"from": "2026-01-11"}) == [oai_id(new)]
    assert listed(until="2026-01-10") == [oai_id(old)]  # the whole day
    assert listed(until="2026-01-10T08:00:05Z") == [oai_id(old)]  # the whole second
    assert listed(until="2026-01-10T08:00:04Z") == []
    assert listed(**{"from": "2026-01-10T08:00:05Z", "until": "2026-01-12T08:00:05Z"}) == [
        oai_id(old),
        oai_id(new),
    ]
    header = oai(verb="GetRecord", identifier=oai_id(old), metadataPrefix="oai_dc")
    assert header.findtext(".//o:datestamp", namespaces=NS) == "2026-01-10T08:00:05Z"


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "badVerb"),
        ("verb=Frobnicate", "badVerb"),
        ("verb=Identify&verb=Identify", "badVerb"),
        ("verb=Identify&colour=blue", "badArgument"),
        ("verb=ListRecords", "badArgument"),
        ("verb=GetRecord&metadataPrefix=oai_dc", "badArgument"),
        ("verb=ListRecords&metadataPrefix=oai_dc&metadataPrefix=lom", "badArgument"),
        ("verb=ListRecords&metadataPrefix=oai_dc&from=2026-13-01", "badArgument"),
        ("verb=ListRecords&metadataPrefix=oai_dc&from=yesterday", "badArgument"),
        ("verb=ListRecords&metadataPrefix=oai_dc&from=2026-01-01T10:00:00.5Z", "badArgument"),
        ("verb=ListRecords&metadataPrefix=oai_dc&from=2026-02-01&until=2026-01-01", "badArgument"),
        (
            "verb=ListRecords&metadataPrefix=oai_dc&from=2026-01-01&until=2026-02-01T00:00:00Z",
            "badArgument",
        ),
        ("verb=ListRecords&resumptionToken=abc&metadataPrefix=oai_dc", "badArgument"),
        ("verb=ListRecords&resumptionToken=abc", "badResumptionToken"),
        ("verb=ListSets&resumptionToken=abc", "badResumptionToken"),
        ("verb=ListRecords&metadataPrefix=marc21", "cannotDisseminateFormat"),
        (
            "verb=GetRecord&metadataPrefix=mods&identifier=oai:karmayogi:x",
            "cannotDisseminateFormat",
        ),
        ("verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:other:1", "idDoesNotExist"),
        (f"verb=ListMetadataFormats&identifier=oai:karmayogi:{UNKNOWN_COURSE}", "idDoesNotExist"),
        ("verb=ListIdentifiers&metadataPrefix=lom", "noRecordsMatch"),
        ("verb=ListRecords&metadataPrefix=oai_dc&set=origin:nowhere", "noRecordsMatch"),
    ],
)
def test_every_error_is_answered_with_its_code(
    catalogue: CatalogueIndexPage, query: str, code: str
) -> None:
    response = Client().get(f"/oai?{query}")
    assert response.status_code == 200 and response["Content-Type"] == "text/xml; charset=utf-8"
    document = valid(etree.fromstring(response.content))
    assert error_code(document) == code
    request = document.find("o:request", NS)
    assert request is not None
    if code in ("badVerb", "badArgument"):
        assert dict(request.attrib) == {}  # the protocol: no attributes then
    else:
        assert request.get("verb")


@pytest.mark.django_db
def test_a_tampered_or_foreign_token_is_refused(
    catalogue: CatalogueIndexPage, settings: Any
) -> None:
    set_portal(settings, oai_page_size=1)
    arrival(), arrival()
    first = oai(verb="ListRecords", metadataPrefix="oai_dc")
    token = str(first.findtext(".//o:resumptionToken", namespaces=NS))
    tampered = ("A" if token[0] != "A" else "B") + token[1:]
    assert error_code(oai(verb="ListRecords", resumptionToken=tampered)) == "badResumptionToken"
    assert error_code(oai(verb="ListIdentifiers", resumptionToken=token)) == "badResumptionToken"
    assert identifiers(oai(verb="ListRecords", resumptionToken=token))


# --- pages -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_page_costs_the_same_queries_whatever_its_size(
    catalogue: CatalogueIndexPage, settings: Any
) -> None:
    set_portal(settings, oai_page_size=100)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            for prefix in ("oai_dc", "lom"):
                Client().get("/oai", {"verb": "ListRecords", "metadataPrefix": prefix})
        return len(captured)

    arrival()
    few = queries()
    for _ in range(12):
        arrival()
    assert queries() == few


@pytest.mark.django_db
def test_the_anonymous_page_cache_never_serves_oai(catalogue: CatalogueIndexPage) -> None:
    first = arrival()
    query = {"verb": "ListIdentifiers", "metadataPrefix": "oai_dc", "set": "origin:bihar"}
    assert identifiers(oai(**query)) == [oai_id(first)]
    second = arrival()  # the same URL must show it at once
    assert identifiers(oai(**query)) == [oai_id(first), oai_id(second)]


# --- an independent harvester through a live server --------------------------------------


@pytest.mark.django_db(transaction=True)
def test_sickle_harvests_everything_once_while_records_are_added(
    live_server: Any, settings: Any
) -> None:
    prepare_site()
    set_portal(settings, oai_page_size=3)
    present = [arrival(origin=("bihar", "rajasthan")[n % 2]) for n in range(10)]
    withdrawn = present[4]
    withdrawn.retired = True
    withdrawn.save()
    sickle = Sickle(f"{live_server.url}/oai")
    seen: list[str] = []
    added: list[CatalogueEntry] = []
    for number, record in enumerate(sickle.ListRecords(metadataPrefix="oai_dc"), start=1):
        seen.append(record.header.identifier)
        if record.header.identifier == oai_id(withdrawn):
            assert record.header.deleted and not hasattr(record, "metadata")
        if number % 3 == 0:  # between pages: a new course arrives, an old one changes
            added.append(arrival(origin="bihar"))
            present[number % 10].hidden = not present[number % 10].hidden
            present[number % 10].save()
    expected = {oai_id(e) for e in present}
    assert len(seen) == len(set(seen)), "a record was served twice"
    assert expected <= set(seen), "a record present at the start was skipped"
    assert set(seen) - expected <= {oai_id(e) for e in added}
    catalogue_ids = {
        f"oai:karmayogi:{u}" for u in CatalogueEntry.objects.values_list("uuid", flat=True)
    }
    assert set(seen) <= catalogue_ids


@pytest.mark.django_db(transaction=True)
def test_sickle_selective_harvests(live_server: Any, settings: Any) -> None:
    prepare_site()
    set_portal(settings, oai_page_size=2)
    bihar = [arrival(origin="bihar", languages=("hi",), area="domain") for _ in range(3)]
    mauritius = arrival(origin="mauritius", languages=("fr",), area="behavioural")
    CatalogueEntry.objects.filter(pk=mauritius.pk).update(
        datestamp=datetime(2025, 6, 1, tzinfo=UTC)
    )
    gone = bihar[0]
    gone.hidden = True
    gone.save()
    sickle = Sickle(f"{live_server.url}/oai", http_method="POST")
    assert sickle.Identify().deletedRecord == "persistent"

    def harvested(**arguments: str) -> set[str]:
        return {h.identifier for h in sickle.ListIdentifiers(metadataPrefix="lom", **arguments)}

    assert harvested(set="origin:bihar") == {oai_id(e) for e in bihar}
    assert harvested(set="area:behavioural") == harvested(set="language:fr") == {oai_id(mauritius)}
    assert harvested(until="2025-06-01") == {oai_id(mauritius)}
    assert oai_id(mauritius) not in harvested(**{"from": "2025-06-02T00:00:00Z"})
    with pytest.raises(NoRecordsMatch):
        harvested(set="origin:nowhere")
    deleted = [r for r in sickle.ListRecords(metadataPrefix="lom", set="origin:bihar") if r.deleted]
    assert [r.header.identifier for r in deleted] == [oai_id(gone)]
    record = sickle.GetRecord(identifier=oai_id(bihar[1]), metadataPrefix="oai_dc")
    assert record.metadata["identifier"][0] == bihar[1].iri
    assert {s.setSpec for s in sickle.ListSets()} >= {"origin:bihar", "language:fr", "area:domain"}
