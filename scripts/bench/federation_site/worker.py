"""The federation benchmark's steps that run inside a portal instance, one process each.

``scripts/bench/federation.py`` runs ``python worker.py STEP ...`` with an instance's
environment (the production settings, its own database and data folder) and reads the JSON
object this prints as its last line. The steps:

- ``fill``: the hub's change log grown to ``--to`` records of courses it originates, each
  built by ``records.record_of`` and signed by ``signing.sign``, written in bulk;
- ``change``: ``--count`` of those courses published again as a new version, through
  ``changes.append`` as the hub appends any change;
- ``sync``: ``manage.py federation_sync`` run in this process, timed once Django has
  started, with the process's peak memory;
- ``fetch``: the hub's feed read page by page with httpx and parsed, nothing verified or
  stored (``--dump`` writes the records to a file afterwards, for ``insert``);
- ``check``: the feed read and every record checked as the sync checks it (each origin's keys
  read once, as in a sync), one after the other in this process, nothing stored;
- ``insert``: the records of a ``--dump`` bulk-inserted into the catalogue tables, timed
  without the conversion from record to rows;
- ``harvest``: the OAI-PMH endpoint ``--url`` harvested whole by Sickle (``ListRecords``,
  ``oai_dc``), as any outside harvester would.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BATCH = 1000
PAGE = 500  # the feed's largest page; the sync writes one page per transaction

# (English, Hindi) pieces of course titles; a title is a form of a topic for an audience.
TOPICS = [
    ("Public Procurement", "सार्वजनिक खरीद"),
    ("Right to Information", "सूचना का अधिकार"),
    ("Cyber Security", "साइबर सुरक्षा"),
    ("Financial Management", "वित्तीय प्रबंधन"),
    ("Disaster Management", "आपदा प्रबंधन"),
    ("e-Office", "ई-ऑफ़िस"),
    ("Project Management", "परियोजना प्रबंधन"),
    ("Data Analytics", "डेटा विश्लेषण"),
    ("Ethics in Governance", "शासन में नैतिकता"),
    ("Grievance Redressal", "शिकायत निवारण"),
]
FORMS = [
    ("Introduction to {}", "{} का परिचय"),
    ("{} in practice", "व्यवहार में {}"),
    ("Advanced {}", "उन्नत {}"),
    ("Case studies in {}", "{} के केस अध्ययन"),
]
AUDIENCES = [
    ("district officers", "ज़िला अधिकारी"),
    ("section officers", "अनुभाग अधिकारी"),
    ("frontline staff", "अग्रिम पंक्ति के कर्मचारी"),
    ("new recruits", "नव नियुक्त कर्मचारी"),
]
PROVIDERS = [
    "iGOT Karmayogi",
    "Lal Bahadur Shastri National Academy of Administration",
    "Institute of Secretariat Training and Management",
    "National Institute of Financial Management",
    "National e-Governance Division",
]
LANGUAGE_SETS = [(["hi", "en"], 7), (["en"], 2), (["hi"], 1)]
DURATIONS = [30, 45, 60, 90, 120, 180, 240]


def memory_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    rss, peak = (int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM"))
    return rss, peak


def setup_django() -> None:
    import django

    django.setup()


def federation() -> dict[str, Any]:
    config: dict[str, Any] = json.loads(os.environ["KARMAYOGI_FEDERATION"])
    return config


# --- the hub ---------------------------------------------------------------------------------


def _entry(number: int, origin: str, domain: str, terms: list[Any], now: datetime) -> Any:
    """The unsaved catalogue row of the hub's course ``number`` (the same for every run)."""
    from tenant_portal.catalogue.models import CatalogueEntry
    from tenant_portal.catalogue.services import term_snapshot

    rng = random.Random(number)
    topic_en, topic_hi = rng.choice(TOPICS)
    form_en, form_hi = rng.choice(FORMS)
    audience_en, audience_hi = rng.choice(AUDIENCES)
    minutes = rng.choice(DURATIONS)
    languages = rng.choices([s[0] for s in LANGUAGE_SETS], [s[1] for s in LANGUAGE_SETS])[0]
    texts = {
        "en": (
            f"{form_en.format(topic_en)} for {audience_en}",
            f"A {minutes}-minute course on {topic_en.lower()} for {audience_en}, with worked "
            "examples from state departments and a short assessment at the end.",
        ),
        "hi": (
            f"{audience_hi} के लिए {form_hi.format(topic_hi)}",
            f"{audience_hi} के लिए {topic_hi} पर {minutes} मिनट का पाठ्यक्रम, राज्य विभागों के "
            "उदाहरणों और अंत में एक छोटे आकलन के साथ।",
        ),
    }
    course = uuid.UUID(int=rng.getrandbits(128), version=4)
    return CatalogueEntry(
        uuid=course,
        iri=f"https://{domain}/courses/{course}",
        origin=origin,
        origin_name="Karmayogi Bharat",
        provider=rng.choice(PROVIDERS),
        name={code: texts[code][0] for code in languages},
        description={code: texts[code][1] for code in languages},
        languages=languages,
        duration_minutes=minutes,
        competencies=[
            term_snapshot(term, rng.randint(1, 5)) for term in rng.sample(terms, rng.randint(1, 3))
        ],
        url=f"https://{domain}/courses/{course}/",
        version=1,
        modified=now - timedelta(seconds=rng.randint(3600, 365 * 86400)),
    )


def _sign_with_one_key_lookup() -> None:
    """``signing.sign`` looks the current key up in the database on every call, a round trip
    that would double the fill's time; the fill signs with one key, so it looks it up once.
    The signing itself is ``signing.sign``'s own code."""
    from tenant_portal.federation import signing

    key = signing.current_key()
    signing.current_key = lambda: key  # type: ignore[assignment]


def fill(args: argparse.Namespace) -> dict[str, Any]:
    from django.conf import settings
    from django.db import transaction
    from django.db.models import Max

    from tenant_portal.competencies.models import SubTheme
    from tenant_portal.federation.models import Change
    from tenant_portal.federation.records import record_of, validate
    from tenant_portal.federation.signing import sign

    terms = list(SubTheme.objects.filter(retired=False).select_related("theme__area"))
    if not terms:
        raise SystemExit("no competency framework loaded (prepare_portal loads the sample)")
    origin, domain = settings.PORTAL.tenant, settings.PORTAL.domain
    _sign_with_one_key_lookup()
    first = Change.objects.count()
    position = Change.objects.aggregate(last=Max("position"))["last"] or 0
    now = datetime.now(UTC).replace(microsecond=0)
    signing = writing = 0.0
    validate(record_of(_entry(first, origin, domain, terms, now)))  # what the tenant will do
    for start in range(first, args.to, BATCH):
        began = time.perf_counter()
        rows = []
        for number in range(start, min(start + BATCH, args.to)):
            entry = _entry(number, origin, domain, terms, now)
            kid, token = sign(record_of(entry))
            position += 1
            rows.append(
                Change(
                    position=position,
                    uuid=entry.uuid,
                    origin=origin,
                    kind=Change.UPSERT,
                    version=entry.version,
                    kid=kid,
                    jws=token,
                )
            )
        signed = time.perf_counter()
        with transaction.atomic():
            Change.objects.bulk_create(rows)
        signing += signed - began
        writing += time.perf_counter() - signed
    return {"added": args.to - first, "sign_seconds": signing, "write_seconds": writing}


def change(args: argparse.Namespace) -> dict[str, Any]:
    """Publish ``--count`` of the hub's courses again, spread over the log, as new versions."""
    from joserfc import jws

    from tenant_portal.federation.changes import append
    from tenant_portal.federation.models import Change
    from tenant_portal.federation.signing import sign

    courses = list(Change.objects.order_by("uuid").values_list("uuid", flat=True))
    step = max(len(courses) // args.count, 1)
    chosen = courses[args.round % step :: step][: args.count]
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    began = time.perf_counter()
    for course in chosen:
        old = Change.objects.get(uuid=course)
        record = json.loads(jws.extract_compact(old.jws.encode()).payload)
        record["version"] = old.version + 1
        record["dateModified"] = now
        record["description"] = {
            code: f"{text.split(' (rev')[0]} (rev {record['version']})"
            for code, text in record["description"].items()
        }
        kid, token = sign(record)
        append(
            course=course,
            origin=old.origin,
            kind=Change.UPSERT,
            version=record["version"],
            kid=kid,
            jws=token,
        )
    return {"changed": len(chosen), "seconds": time.perf_counter() - began}


# --- a tenant --------------------------------------------------------------------------------


def sync(args: argparse.Namespace) -> dict[str, Any]:
    from django.core.management import call_command

    from tenant_portal.catalogue.models import CatalogueEntry

    started_rss, _ = memory_mb()
    out = io.StringIO()
    began = time.perf_counter()
    call_command("federation_sync", args.peer, limit=args.limit, stdout=out, stderr=out)
    seconds = time.perf_counter() - began
    _, peak = memory_mb()
    return {
        "seconds": seconds,
        "peak_mb": peak,
        "started_mb": started_rss,
        "output": out.getvalue().strip(),
        "entries": CatalogueEntry.objects.count(),
    }


def _token(config: dict[str, Any]) -> str:
    import httpx

    response = httpx.post(
        f"{config['hubIssuer']}/protocol/openid-connect/token",
        data={"grant_type": "client_credentials"},
        auth=(config["clientId"], config["clientSecret"]),
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def fetch(args: argparse.Namespace) -> dict[str, Any]:
    """Every page of the feed, as the sync asks for them, parsed; nothing checked or kept
    but the records' count (and, with ``--dump``, the records, written after the timing)."""
    import httpx

    config = federation()
    url = f"{config['peers'][0]['url']}/federation/v1/changes"
    kept: list[str] = []
    records = pages = size = 0
    began = time.perf_counter()
    headers = {"Authorization": f"Bearer {_token(config)}", "Accept": "application/json"}
    after, last = 0, 1
    with httpx.Client(timeout=httpx.Timeout(10.0, read=30.0)) as client:
        while after < last:
            response = client.get(
                url, params={"after": after, "limit": args.limit}, headers=headers
            )
            response.raise_for_status()
            page = json.loads(response.content)
            pages += 1
            size += len(response.content)
            records += len(page["changes"])
            if args.dump:
                kept += [change["record"] for change in page["changes"]]
            if not page["changes"]:
                break
            after, last = page["next"], page["last"]
    seconds = time.perf_counter() - began
    if args.dump:
        Path(args.dump).write_text("\n".join(kept) + "\n")
    return {"seconds": seconds, "records": records, "pages": pages, "bytes": size}


def check(args: argparse.Namespace) -> dict[str, Any]:
    """The sync's loop without its writes: every page fetched and every record checked."""
    import httpx

    from tenant_portal.federation import sync as federation_sync
    from tenant_portal.federation.signing import key_ring

    source = federation_sync.peer(args.peer)
    began = time.perf_counter()
    known = federation_sync._known_competencies()
    accepted = refused = 0
    cursor = 0
    with httpx.Client(timeout=federation_sync.TIMEOUT) as client, key_ring():
        while True:
            page = federation_sync.fetch(client, source, cursor, args.limit)
            held = federation_sync._held_versions(page.changes)
            for item in page.changes:
                try:
                    federation_sync.check(source, item, known, held)
                    accepted += 1
                except federation_sync.Refused:
                    refused += 1
            cursor = page.next
            if not page.changes or page.next >= page.last:
                break
    return {"seconds": time.perf_counter() - began, "records": accepted, "refused": refused}


def _rows(records: list[dict[str, Any]]) -> Iterator[tuple[Any, list[Any], list[Any]]]:
    """Each record's catalogue row with its language and competency rows, as the sync makes
    them (``records.entry_fields``)."""
    from tenant_portal.catalogue.models import CatalogueEntry, EntryCompetency, EntryLanguage
    from tenant_portal.competencies.models import SubTheme
    from tenant_portal.federation.records import course_uuid, entry_fields
    from tenant_portal.federation.sync import _known_competencies

    known = _known_competencies()
    sub_themes = dict(SubTheme.objects.values_list("iri", "id"))
    for record in records:
        entry = CatalogueEntry(uuid=course_uuid(record), **entry_fields(record, known))
        languages = [EntryLanguage(entry=entry, code=code) for code in entry.languages]
        terms = [
            EntryCompetency(entry=entry, sub_theme_id=sub_themes[c["iri"]], level=c["level"])
            for c in entry.competencies
            if c["iri"] in sub_themes
        ]
        yield entry, languages, terms


def insert(args: argparse.Namespace) -> dict[str, Any]:
    """The dumped records bulk-inserted, a page's worth per transaction, as the sync writes."""
    from django.db import transaction
    from joserfc import jws

    from tenant_portal.catalogue.models import CatalogueEntry, EntryCompetency, EntryLanguage

    tokens = Path(args.dump).read_text().split()
    records = [json.loads(jws.extract_compact(token.encode()).payload) for token in tokens]
    rows = list(_rows(records))
    began = time.perf_counter()
    for start in range(0, len(rows), PAGE):
        batch = rows[start : start + PAGE]
        with transaction.atomic():
            CatalogueEntry.objects.bulk_create([entry for entry, _, _ in batch], batch_size=PAGE)
            EntryLanguage.objects.bulk_create(
                [row for _, languages, _ in batch for row in languages], batch_size=BATCH
            )
            EntryCompetency.objects.bulk_create(
                [row for _, _, terms in batch for row in terms], batch_size=BATCH
            )
    return {"seconds": time.perf_counter() - began, "records": len(rows)}


def harvest(args: argparse.Namespace) -> dict[str, Any]:
    from sickle import Sickle

    began = time.perf_counter()
    records = sum(1 for _ in Sickle(args.url, timeout=120).ListRecords(metadataPrefix="oai_dc"))
    return {"seconds": time.perf_counter() - began, "records": records}


STEPS: dict[str, tuple[Callable[[argparse.Namespace], dict[str, Any]], bool]] = {
    # step: (function, needs Django)
    "fill": (fill, True),
    "change": (change, True),
    "sync": (sync, True),
    "fetch": (fetch, False),
    "check": (check, True),
    "insert": (insert, True),
    "harvest": (harvest, False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=sorted(STEPS))
    parser.add_argument("--to", type=int, default=0)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--round", type=int, default=0)
    parser.add_argument("--peer", default="")
    parser.add_argument("--limit", type=int, default=PAGE)
    parser.add_argument("--dump", default="")
    parser.add_argument("--url", default="")
    args = parser.parse_args()
    function, needs_django = STEPS[args.step]
    if needs_django:
        setup_django()
    result = function(args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
