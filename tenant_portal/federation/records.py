"""Course record v1.1: a catalogue row as the JSON-LD document instances exchange, and back.

The record is a profile of schema.org ``Course`` (DESIGN §6); its JSON Schema ships in
``schemas/course-record-v1.1.json`` and is documented in ``docs/federation.md``. Version 1.1 is
version 1 plus ``provider.nameMap``, the provider's name per language (issue 19); records of
either version are accepted, and this instance publishes 1.1. Names and
descriptions are JSON-LD language maps, languages BCP 47 tags, competencies ``DefinedTerm``s
of the KCM with a level. A withdrawn course travels as the same record with
``creativeWorkStatus: "Withdrawn"`` (a tombstone that still says what it withdraws).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema_rs
from django.conf import settings
from jsonschema import Draft202012Validator

from tenant_portal.catalogue.models import CatalogueEntry
from tenant_portal.federation.schemas import FederationSchema

SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"
SCHEMA_PATH = SCHEMAS_DIR / "course-record-v1.1.json"
SCHEMA_ID = "https://karmayogi.example/schemas/course-record/v1.1.json"
V1_SCHEMA_PATH = SCHEMAS_DIR / "course-record-v1.json"
V1_SCHEMA_ID = "https://karmayogi.example/schemas/course-record/v1.json"
CONTEXT: list[Any] = [
    "https://schema.org",
    {
        "name": {"@id": "schema:name", "@container": "@language"},
        "description": {"@id": "schema:description", "@container": "@language"},
        # The provider's name per language: schema:name too, as language-tagged values.
        "nameMap": {"@id": "schema:name", "@container": "@language"},
    },
]
LICENSE = "https://creativecommons.org/licenses/by/4.0/"


class RecordError(ValueError):
    """A record that is not a valid course record; the message says where and why."""


SCHEMA = FederationSchema(SCHEMA_PATH)
V1_SCHEMA = FederationSchema(V1_SCHEMA_PATH)


def compiled() -> jsonschema_rs.Validator:
    """The record schema compiled once (``federation.schemas``)."""
    return SCHEMA.compiled


def validator() -> Draft202012Validator:
    """The reference validator (jsonschema), which words the reason a record is refused."""
    return SCHEMA.validator


def validate(record: Any) -> None:
    """Return if ``record`` is a course record v1 or v1.1; :class:`RecordError` saying where
    and why otherwise (``federation.schemas``). A record naming v1 is checked against v1's
    schema, any other against v1.1's (whose ``schemaVersion`` refuses an unknown version)."""
    v1 = isinstance(record, dict) and record.get("schemaVersion") == V1_SCHEMA_ID
    problem = (V1_SCHEMA if v1 else SCHEMA).problem(record, "(record)")
    if problem is not None:
        raise RecordError(problem)


def duration(minutes: int) -> str:
    hours, rest = divmod(max(minutes, 1), 60)
    return "PT" + (f"{hours}H" if hours else "") + (f"{rest}M" if rest else "")


def minutes(iso: str) -> int:
    body = iso.removeprefix("PT")
    hours, _, rest = body.partition("H") if "H" in body else ("0", "", body)
    return int(hours or 0) * 60 + int(rest.removesuffix("M") or 0)


def record_of(entry: CatalogueEntry) -> dict[str, Any]:
    """The record of a course this instance originates."""
    withdrawn = entry.retired or entry.internal
    url = entry.url if entry.url.startswith("http") else f"{settings.PORTAL.portal_url}{entry.url}"
    # A course from elsewhere (shown on its record page here) is provided by its origin.
    provider_url = settings.PORTAL.portal_url if entry.is_local else origin_url(url)
    provider: dict[str, Any] = {
        "@type": "GovernmentOrganization",
        "name": entry.provider,
        "identifier": entry.origin,
        "url": provider_url,
    }
    if entry.provider_name:
        provider["nameMap"] = entry.provider_name
    return {
        "@context": CONTEXT,
        "@type": "Course",
        "schemaVersion": SCHEMA_ID,
        "@id": entry.iri,
        "identifier": entry.iri,
        "name": entry.name,
        "description": entry.description,
        "provider": provider,
        "inLanguage": entry.languages,
        "teaches": [
            {
                "@type": "DefinedTerm",
                "@id": term["iri"],
                "name": term["name"],
                "educationalLevel": term["level"],
            }
            for term in entry.competencies
        ],
        "timeRequired": duration(entry.duration_minutes),
        "version": entry.version,
        "dateModified": entry.modified.isoformat(timespec="seconds"),
        "license": LICENSE,
        "url": url,
        "creativeWorkStatus": "Withdrawn" if withdrawn else "Published",
    }


def origin_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def jsonld(entry: CatalogueEntry) -> str:
    """The course's record as a JSON-LD block's text, safe inside ``<script>`` (``<``, ``>``
    and ``&`` escaped as JSON escapes), for search engines and any schema.org reader."""
    text = json.dumps(record_of(entry), ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def course_uuid(record: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(str(record["identifier"]).rsplit("/", 1)[1])


def entry_fields(record: dict[str, Any], competencies: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """CatalogueEntry fields from a validated record; ``competencies`` maps the KCM IRIs this
    instance knows to their snapshot (area, theme names), so filters work on arrivals too."""
    from tenant_portal.catalogue.services import search_text

    teaches = []
    for term in record["teaches"]:
        known = competencies[term["@id"]]
        teaches.append({**known, "level": term["educationalLevel"]})
    name, description = record["name"], record.get("description", {})
    return {
        "iri": record["identifier"],
        "origin": record["provider"]["identifier"],
        "origin_name": record["provider"]["name"],
        "provider": record["provider"]["name"],
        # A v1 record (or a v1.1 one without a map) names the provider in one language, the
        # origin's first: an empty map shows ``provider`` as is.
        "provider_name": record["provider"].get("nameMap", {}),
        "name": name,
        "description": description,
        "languages": record["inLanguage"],
        "duration_minutes": minutes(record["timeRequired"]),
        "competencies": teaches,
        "url": record["url"],
        "page": None,
        "version": record["version"],
        "modified": datetime.fromisoformat(record["dateModified"]),
        "internal": False,
        "retired": record["creativeWorkStatus"] == "Withdrawn",
        "search_text": search_text(
            name.values(),
            description.values(),
            [record["provider"]["name"], *record["provider"].get("nameMap", {}).values()],
            [t for c in teaches for t in c["name"].values()],
        ),
    }
