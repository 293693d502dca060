"""A catalogue row as ``oai_dc`` (simple Dublin Core) and as IEEE LOM (1484.12.3 XML binding).

Both follow the course record (``federation.records.record_of``): names and descriptions per
language carry their BCP 47 tag (``xml:lang`` in Dublin Core, ``language`` in LOM), the
identifier is the course IRI, the rights its licence, and the competencies it teaches are KCM
terms with a level 1-5. The field-by-field mapping is in ``docs/oai-pmh.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from lxml import etree

from tenant_portal.catalogue.models import CatalogueEntry
from tenant_portal.federation.records import LICENSE, duration

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
OAI_DC = "http://www.openarchives.org/OAI/2.0/oai_dc/"
DC = "http://purl.org/dc/elements/1.1/"
LOM = "http://ltsc.ieee.org/xsd/LOM"
KCM_SOURCE = "Karmayogi Competency Model"
# Characters XML 1.0 cannot carry; a federated record could hold them.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# xs:language, which xml:lang and LOM's language attributes take.
_LANGUAGE = re.compile(r"[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*")


@dataclass(frozen=True)
class Format:
    prefix: str
    schema: str
    namespace: str
    write: Callable[[etree._Element, CatalogueEntry], None]


def default_namespace(namespace: str) -> Any:
    """An nsmap with ``namespace`` as the default (lxml-stubs want str keys; lxml takes None)."""
    return {None: namespace, "xsi": XSI}


def text(value: Any) -> str:
    return _NOT_XML.sub("", str(value))


def languages(entry: CatalogueEntry) -> list[str]:
    return [code for code in entry.languages if _LANGUAGE.fullmatch(str(code))]


def language_map(value: Any) -> list[tuple[str, str]]:
    """(tag, text) pairs of a language map, tags that are not BCP 47-shaped left out."""
    if not isinstance(value, dict):
        return []
    return [
        (str(tag), text(body))
        for tag, body in value.items()
        if _LANGUAGE.fullmatch(str(tag)) and str(body).strip()
    ]


def titles(entry: CatalogueEntry) -> list[tuple[str, str]]:
    return language_map({**entry.name, **(entry.local_name or {})})


def absolute_url(entry: CatalogueEntry) -> str:
    return entry.url if entry.url.startswith("http") else f"{settings.PORTAL.portal_url}{entry.url}"


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


def competencies(entry: CatalogueEntry) -> list[dict[str, Any]]:
    return [c for c in entry.competencies if isinstance(c, dict) and c.get("iri")]


# --- oai_dc ----------------------------------------------------------------------------------


def write_dc(parent: etree._Element, entry: CatalogueEntry) -> None:
    root = etree.SubElement(
        parent,
        f"{{{OAI_DC}}}dc",
        nsmap={"oai_dc": OAI_DC, "dc": DC, "xsi": XSI},
        attrib={f"{{{XSI}}}schemaLocation": f"{OAI_DC} {FORMATS['oai_dc'].schema}"},
    )

    def add(name: str, value: str, lang: str | None = None) -> None:
        element = etree.SubElement(root, f"{{{DC}}}{name}")
        element.text = text(value)
        if lang:
            element.set(XML_LANG, lang)

    for lang, value in titles(entry):
        add("title", value, lang)
    add("creator", entry.provider)
    for term in competencies(entry):
        for lang, name in language_map(term.get("name")):
            add("subject", f"{name} ({term.get('level', 0)}/5)", lang)
        add("subject", str(term["iri"]))
    for lang, value in language_map(entry.description):
        add("description", value, lang)
    add("publisher", entry.origin_name or entry.provider)
    add("date", utc(entry.modified).strftime("%Y-%m-%dT%H:%M:%SZ"))
    add("type", "InteractiveResource")
    add("format", "text/html")
    add("identifier", entry.iri)
    add("identifier", absolute_url(entry))
    for code in languages(entry):
        add("language", code)
    add("rights", LICENSE)


# --- IEEE LOM --------------------------------------------------------------------------------


def write_lom(parent: etree._Element, entry: CatalogueEntry) -> None:
    root = etree.SubElement(
        parent,
        f"{{{LOM}}}lom",
        nsmap=default_namespace(LOM),
        attrib={f"{{{XSI}}}schemaLocation": f"{LOM} {FORMATS['lom'].schema}"},
    )

    def el(under: etree._Element, name: str, value: str | None = None) -> etree._Element:
        element = etree.SubElement(under, f"{{{LOM}}}{name}")
        if value is not None:
            element.text = text(value)
        return element

    def strings(under: etree._Element, name: str, pairs: list[tuple[str, str]]) -> None:
        holder = el(under, name)
        for lang, value in pairs:
            el(holder, "string", value).set("language", lang)

    def vocabulary(under: etree._Element, name: str, value: str) -> None:
        holder = el(under, name)
        el(holder, "source", "LOMv1.0")
        el(holder, "value", value)

    # LOM's DateTime pattern allows a time zone only after fractions of a second.
    stamp = utc(entry.modified).strftime("%Y-%m-%dT%H:%M:%S.0Z")
    time_required = duration(entry.duration_minutes)

    general = el(root, "general")
    identifier = el(general, "identifier")
    el(identifier, "catalog", "URI")
    el(identifier, "entry", entry.iri)
    strings(general, "title", titles(entry))
    for code in languages(entry):
        el(general, "language", code)
    if language_map(entry.description):
        strings(general, "description", language_map(entry.description))
    vocabulary(general, "aggregationLevel", "3")

    life = el(root, "lifeCycle")
    strings(life, "version", [("en", str(entry.version))])
    vocabulary(life, "status", "final")
    for role, who in (("content provider", entry.provider), ("publisher", entry.origin_name)):
        if not who:
            continue
        contribute = el(life, "contribute")
        vocabulary(contribute, "role", role)
        el(contribute, "entity", vcard(who))
        el(el(contribute, "date"), "dateTime", stamp)

    meta = el(root, "metaMetadata")
    el(meta, "metadataSchema", "LOMv1.0")

    technical = el(root, "technical")
    el(technical, "format", "text/html")
    el(technical, "location", absolute_url(entry))
    el(el(technical, "duration"), "duration", time_required)

    educational = el(root, "educational")
    vocabulary(educational, "intendedEndUserRole", "learner")
    vocabulary(educational, "context", "training")
    el(el(educational, "typicalLearningTime"), "duration", time_required)
    for code in languages(entry):
        el(educational, "language", code)

    rights = el(root, "rights")
    vocabulary(rights, "cost", "no")
    vocabulary(rights, "copyrightAndOtherRestrictions", "yes")
    strings(rights, "description", [("en", LICENSE)])

    for term in competencies(entry):
        classification = el(root, "classification")
        vocabulary(classification, "purpose", "competency")
        path = el(classification, "taxonPath")
        strings(path, "source", [("en", KCM_SOURCE)])
        for taxon_id, names in taxa(term):
            taxon = el(path, "taxon")
            el(taxon, "id", taxon_id)
            if names:
                strings(taxon, "entry", names)
        level = term.get("level", 0)
        strings(classification, "description", [("en", f"Proficiency level {level} of 5")])


def taxa(term: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Area → theme → sub-theme of a KCM term: ids from its IRI's path (``…/kcm/<area>/<theme>/
    <sub-theme>``, minted from the codes on the path), names from the snapshot."""
    iri = str(term["iri"])
    codes = iri.rstrip("/").split("/")[-3:]
    base = iri.rstrip("/").rsplit("/", 3)[0]
    names = [term.get("areaName"), term.get("theme"), term.get("name")]
    path = []
    for depth, (code, name) in enumerate(zip(codes, names, strict=True)):
        taxon_id = "/".join([base, *codes[: depth + 1]]) if depth < 2 else iri
        path.append((taxon_id or code, language_map(name)))
    return path


def vcard(name: str) -> str:
    escaped = re.sub(r"([\\,;])", r"\\\1", text(name)).replace("\n", " ")
    return f"BEGIN:VCARD\nVERSION:3.0\nFN:{escaped}\nORG:{escaped}\nEND:VCARD"


FORMATS: dict[str, Format] = {
    "oai_dc": Format("oai_dc", "http://www.openarchives.org/OAI/2.0/oai_dc.xsd", OAI_DC, write_dc),
    "lom": Format("lom", "http://ltsc.ieee.org/xsd/lomv1.0/lom.xsd", LOM, write_lom),
}
