"""The six OAI-PMH 2.0 verbs and every error the protocol defines, as lxml trees.

``respond(arguments)`` takes the request's arguments (each with all its values, so a repeated
argument can be refused) and returns the whole ``<OAI-PMH>`` document. Errors are answers too:
an ``<error code=…>`` inside a 200 response, as the protocol says.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone
from lxml import etree

from tenant_portal.oai import selectors, tokens
from tenant_portal.oai.metadata import FORMATS, default_namespace, utc
from tenant_portal.oai.selectors import Item, Selection

OAI = "http://www.openarchives.org/OAI/2.0/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA = "http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd"
PREFIX = "oai:karmayogi:"
GRANULARITY = "YYYY-MM-DDThh:mm:ssZ"
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
SECONDS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
# What XML 1.0 cannot carry (lxml refuses it in text and attributes): C0 controls but tab, line
# feed and carriage return; DEL and the C1 controls (legal, but never in a real argument); lone
# surrogates; U+FFFE and U+FFFF.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# Longer than any identifier, prefix, set, date or token this repository issues.
MAX_ARGUMENT = 2048

# verb: (required arguments, optional arguments); a resumptionToken is exclusive.
VERBS: dict[str, tuple[set[str], set[str]]] = {
    "Identify": (set(), set()),
    "ListMetadataFormats": (set(), {"identifier"}),
    "ListSets": (set(), {"resumptionToken"}),
    "GetRecord": ({"identifier", "metadataPrefix"}, set()),
    "ListIdentifiers": ({"metadataPrefix"}, {"from", "until", "set", "resumptionToken"}),
    "ListRecords": ({"metadataPrefix"}, {"from", "until", "set", "resumptionToken"}),
}


class OaiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Request:
    verb: str
    arguments: dict[str, str]


def e(tag: str, parent: etree._Element | None = None, value: str | None = None) -> etree._Element:
    element = etree.Element(f"{{{OAI}}}{tag}") if parent is None else None
    if element is None:
        assert parent is not None
        element = etree.SubElement(parent, f"{{{OAI}}}{tag}")
    if value is not None:
        element.text = value
    return element


def stamp(moment: datetime) -> str:
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def identifier_of(course: uuid.UUID) -> str:
    return f"{PREFIX}{course}"


def course_of(identifier: str) -> uuid.UUID | None:
    if not identifier.startswith(PREFIX):
        return None
    rest = identifier.removeprefix(PREFIX)
    try:
        course = uuid.UUID(rest)
    except ValueError:
        return None
    return course if str(course) == rest else None


def base_url() -> str:
    return f"{settings.PORTAL.portal_url}/oai"


def respond(arguments: dict[str, list[str]]) -> etree._Element:
    root = etree.Element(
        f"{{{OAI}}}OAI-PMH",
        nsmap=default_namespace(OAI),
        attrib={f"{{{XSI}}}schemaLocation": f"{OAI} {SCHEMA}"},
    )
    e("responseDate", root, stamp(timezone.now()))
    request = e("request", root, base_url())
    try:
        parsed = parse(arguments)
    except OaiError as error:  # badVerb, badArgument: the request element has no attributes
        error_element(root, error)
        return root
    for name in ("verb", *sorted(parsed.arguments)):
        request.set(name, parsed.verb if name == "verb" else parsed.arguments[name])
    try:
        HANDLERS[parsed.verb](root, parsed.arguments)
    except OaiError as error:
        error_element(root, error)
    return root


def error_element(root: etree._Element, error: OaiError) -> None:
    e("error", root, error.message).set("code", error.code)


def shown(value: str, limit: int = 64) -> str:
    """``value`` quoted for an error message and cut short. ``repr`` escapes every character
    that is not printable, which covers all that XML cannot carry: never echoed raw."""
    return repr(value[:limit])


def parse(arguments: dict[str, list[str]]) -> Request:
    verbs = arguments.get("verb", [])
    if not verbs:
        raise OaiError("badVerb", "The verb argument is missing.")
    if len(verbs) > 1:
        raise OaiError("badVerb", "The verb argument is repeated.")
    verb = verbs[0]
    if verb not in VERBS:
        raise OaiError("badVerb", f"{shown(verb)} is not an OAI-PMH verb.")
    required, optional = VERBS[verb]
    given: dict[str, str] = {}
    for name, values in arguments.items():
        if name == "verb":
            continue
        if name not in required | optional:
            raise OaiError("badArgument", f"{verb} takes no argument {shown(name)}.")
        if len(values) > 1:
            raise OaiError("badArgument", f"The argument {name} is repeated.")
        given[name] = values[0]
    for name, value in given.items():
        # Checked before anything echoes the argument: the request element carries it.
        if NOT_XML.search(value) or len(value) > MAX_ARGUMENT:
            code = "badResumptionToken" if name == "resumptionToken" else "badArgument"
            what = "is too long" if len(value) > MAX_ARGUMENT else "holds a control character"
            raise OaiError(code, f"The argument {name} {what}.")
    if "resumptionToken" in given:
        if len(given) > 1:
            raise OaiError("badArgument", "resumptionToken is an exclusive argument.")
        return Request(verb, given)
    missing = sorted(required - set(given))
    if missing:
        raise OaiError("badArgument", f"{verb} needs the argument {missing[0]}.")
    selection_of(given)  # refuses a bad date, mixed granularities, from after until
    return Request(verb, given)


def moment(value: str, *, end: bool) -> tuple[datetime, str]:
    """A from/until value as an inclusive bound, with its granularity."""
    if DAY.fullmatch(value):
        try:
            day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise OaiError("badArgument", f"{shown(value)} is not a date.") from None
        return (day + timedelta(days=1) - timedelta(microseconds=1) if end else day), "day"
    if SECONDS.fullmatch(value):
        try:
            second = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise OaiError("badArgument", f"{shown(value)} is not a date and time.") from None
        return (second + timedelta(seconds=1) - timedelta(microseconds=1) if end else second), (
            "seconds"
        )
    raise OaiError("badArgument", f"{shown(value)} is neither YYYY-MM-DD nor YYYY-MM-DDThh:mm:ssZ.")


def selection_of(arguments: dict[str, str]) -> Selection:
    start = end = None
    granularities = set()
    if "from" in arguments:
        start, granularity = moment(arguments["from"], end=False)
        granularities.add(granularity)
    if "until" in arguments:
        end, granularity = moment(arguments["until"], end=True)
        granularities.add(granularity)
    if len(granularities) > 1:
        raise OaiError("badArgument", "from and until must have the same granularity.")
    if start is not None and end is not None and start > end:
        raise OaiError("badArgument", "from is later than until.")
    return Selection(arguments.get("set"), start, end)


# --- the verbs -------------------------------------------------------------------------------


def identify(root: etree._Element, arguments: dict[str, str]) -> None:
    body = e("Identify", root)
    e("repositoryName", body, settings.PORTAL.site_name)
    e("baseURL", body, base_url())
    e("protocolVersion", body, "2.0")
    e("adminEmail", body, settings.PORTAL.admin_email)
    first = selectors.earliest()
    e("earliestDatestamp", body, stamp(first or timezone.now()))
    e("deletedRecord", body, "persistent")
    e("granularity", body, GRANULARITY)


def list_metadata_formats(root: etree._Element, arguments: dict[str, str]) -> None:
    if "identifier" in arguments:
        find(arguments["identifier"])  # idDoesNotExist; every item has both formats
    body = e("ListMetadataFormats", root)
    for fmt in FORMATS.values():
        entry = e("metadataFormat", body)
        e("metadataPrefix", entry, fmt.prefix)
        e("schema", entry, fmt.schema)
        e("metadataNamespace", entry, fmt.namespace)


def list_sets(root: etree._Element, arguments: dict[str, str]) -> None:
    if "resumptionToken" in arguments:
        raise OaiError("badResumptionToken", "ListSets never issues a resumption token.")
    body = e("ListSets", root)
    for spec, name in selectors.sets():
        entry = e("set", body)
        e("setSpec", entry, spec)
        e("setName", entry, name)


def find(identifier: str) -> Item:
    course = course_of(identifier)
    item = selectors.item(course) if course is not None else None
    if item is None:
        raise OaiError(
            "idDoesNotExist", f"{shown(identifier, 200)} is not an item of this repository."
        )
    return item


def format_of(prefix: str) -> str:
    if prefix not in FORMATS:
        raise OaiError("cannotDisseminateFormat", f"{shown(prefix)} is not a metadata format here.")
    return prefix


def get_record(root: etree._Element, arguments: dict[str, str]) -> None:
    prefix = format_of(arguments["metadataPrefix"])
    item = find(arguments["identifier"])
    record(e("GetRecord", root), item, prefix)


def header(parent: etree._Element, item: Item) -> None:
    element = e("header", parent)
    if item.deleted:
        element.set("status", "deleted")
    e("identifier", element, identifier_of(item.entry.uuid))
    e("datestamp", element, stamp(item.entry.datestamp))
    for spec in item.sets:
        e("setSpec", element, spec)


def record(parent: etree._Element, item: Item, prefix: str) -> None:
    element = e("record", parent)
    header(element, item)
    if not item.deleted:
        FORMATS[prefix].write(e("metadata", element), item.entry)


def list_items(root: etree._Element, arguments: dict[str, str], verb: str) -> None:
    if "resumptionToken" in arguments:
        try:
            token = tokens.loads(arguments["resumptionToken"])
            if token.verb != verb:
                raise tokens.BadToken("issued for another verb")
            original = {
                name: value
                for name, value in (
                    ("metadataPrefix", token.prefix),
                    ("set", token.set_spec),
                    ("from", token.start),
                    ("until", token.end),
                )
                if value is not None
            }
            prefix = format_of(token.prefix)
            selection = selection_of(original)
        except (tokens.BadToken, OaiError):
            raise OaiError(
                "badResumptionToken", "The resumption token is not one this repository issued."
            ) from None
    else:
        token = tokens.Token(
            verb,
            format_of(arguments["metadataPrefix"]),
            arguments.get("set"),
            arguments.get("from"),
            arguments.get("until"),
            after=0,
            cursor=0,
        )
        prefix = token.prefix
        selection = selection_of(arguments)
    size = settings.PORTAL.oai_page_size
    items, more = selectors.page(selection, token.after, size)
    if not items:
        raise OaiError("noRecordsMatch", "No item matches the request.")
    body = e(verb, root)
    for item in items:
        if verb == "ListRecords":
            record(body, item, prefix)
        else:
            header(body, item)
    if more or token.cursor:
        total = selectors.count(selection)
        following = tokens.Token(
            verb,
            prefix,
            token.set_spec,
            token.start,
            token.end,
            after=items[-1].entry.pk,
            cursor=token.cursor + len(items),
        )
        resumption = e("resumptionToken", body, following.dumps() if more else None)
        # completeListSize counts the items now; records added mid-harvest can make it grow.
        resumption.set("completeListSize", str(max(total, token.cursor + len(items))))
        resumption.set("cursor", str(token.cursor))


HANDLERS: dict[str, Callable[[etree._Element, dict[str, str]], None]] = {
    "Identify": identify,
    "ListMetadataFormats": list_metadata_formats,
    "ListSets": list_sets,
    "GetRecord": get_record,
    "ListIdentifiers": lambda root, arguments: list_items(root, arguments, "ListIdentifiers"),
    "ListRecords": lambda root, arguments: list_items(root, arguments, "ListRecords"),
}
