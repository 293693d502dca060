"""Pulling a peer's change feed into this instance's catalogue.

A tenant pulls the hub, filtered by its spec's subscription; the hub pulls every tenant that
publishes and appends what it accepts to its own feed, origin signature intact, for the
others. Each page is checked record by record: a record that fails (size, origin, signature,
schema, unknown competency, an older version than the one held) is quarantined with its
reason and the rest go on. The page's records, its quarantined ones and the new cursor are
written in one transaction, so a sync killed at any moment loses nothing and applies nothing
twice. One sync per peer runs at a time: a second one exits with a clear message.

A sync is a pipeline of pages: a thread fetches the next page while this one is checked and
written, worker processes verify the next page's signatures beside this page's writes
(``federation.signatures``), and on PostgreSQL a page is written set-based: copied into a
temporary table, then merged into the catalogue in one statement. At most a few pages are held
at once, so memory stays flat however long the feed.
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import queue
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings
from django.core.cache import cache
from django.db import connection, connections, transaction
from django.utils import timezone

from tenant_portal.catalogue.models import CatalogueEntry, EntryCompetency, EntryLanguage
from tenant_portal.catalogue.services import term_snapshot
from tenant_portal.competencies.models import SubTheme
from tenant_portal.core.page_cache import bump_generation
from tenant_portal.federation import framework as hub_framework
from tenant_portal.federation.changes import append
from tenant_portal.federation.documents import unverified_payload
from tenant_portal.federation.membership import origin_keys_url, pulled_peers
from tenant_portal.federation.models import Change, PeerState, Quarantined
from tenant_portal.federation.records import RecordError, course_uuid, entry_fields, validate
from tenant_portal.federation.signatures import signers, watch_parent
from tenant_portal.federation.signing import KeyRing, SignatureError, key_ring, verify
from tenant_portal.settings.contract import Federation

PAGE_LIMIT = 200
MAX_PAGES = 100_000
MAX_PAGE_BYTES = 64 * 1024 * 1024
MAX_RECORD_BYTES = 256 * 1024
TIMEOUT = httpx.Timeout(10.0, read=30.0)
SYNC_LOCK = 0x4B4A_5359_4E43  # "KJSYNC", plus the peer's hash
# A page at least this long has its signatures verified by worker processes (starting them
# costs a few tenths of a second: an incremental sync of a few changes does without).
PARALLEL_FROM = 100


class SyncError(Exception):
    """The sync of a peer stopped; the message names the peer and the reason."""


class SyncBusy(SyncError):
    """Another sync of the same peer is running."""


@dataclass(frozen=True)
class Peer:
    code: str
    url: str


@dataclass
class SyncResult:
    peer: str
    applied: int = 0
    quarantined: int = 0
    pages: int = 0
    cursor: int = 0
    last: int = 0
    framework: str = ""  # what the hub's framework document changed (a tenant's sync)
    released: int = 0  # quarantined records applied once the framework named their terms


def federation() -> Federation:
    return settings.PORTAL.federation


def peers() -> list[Peer]:
    return [Peer(code, url) for code, url in pulled_peers()]


def peer(code: str) -> Peer:
    for candidate in peers():
        if candidate.code == code:
            return candidate
    known = ", ".join(p.code for p in peers()) or "none"
    raise SyncError(f"{code}: not a peer of this instance (peers: {known})")


def access_token() -> str:
    """A client-credentials token of the hub realm for this instance's federation client."""
    config = federation()
    key = f"federation:token:{config.client_id}"
    token = cache.get(key)
    if token:
        return str(token)
    if not (config.hub_issuer and config.client_id):
        raise SyncError("no token: KARMAYOGI_FEDERATION names no hubIssuer or clientId")
    try:
        response = httpx.post(
            f"{config.hub_issuer}/protocol/openid-connect/token",
            data={"grant_type": "client_credentials"},
            auth=(config.client_id, config.client_secret),
            timeout=TIMEOUT,
        )
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise SyncError(f"no token from the hub realm: {exc.__class__.__name__}") from None
    cache.set(key, body["access_token"], max(int(body.get("expires_in", 60)) - 30, 5))
    return str(body["access_token"])


def lock_key(code: str) -> int:
    """The PostgreSQL advisory lock that one sync of peer ``code`` holds."""
    return SYNC_LOCK ^ (uuid.uuid5(uuid.NAMESPACE_DNS, code).int & 0xFFFF_FFFF)


@contextmanager
def exclusive(code: str) -> Iterator[None]:
    """Hold the one-sync-per-peer lock, or raise :class:`SyncBusy`."""
    busy = SyncBusy(f"{code}: another sync of this peer is running; this one stops")
    if connection.vendor == "postgresql":
        key = lock_key(code)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            if not cursor.fetchone()[0]:
                raise busy
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        return
    path = settings.PORTAL.data_dir / f"federation-sync-{code}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        yield


# --- fetching -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    changes: list[dict[str, Any]]
    next: int
    last: int


def fetch(client: httpx.Client, source: Peer, after: int, limit: int) -> Page:
    url = f"{source.url}/federation/v1/changes"
    headers = {"Authorization": f"Bearer {access_token()}", "Accept": "application/json"}
    try:
        with client.stream(
            "GET", url, params={"after": after, "limit": limit}, headers=headers
        ) as r:
            if r.status_code != 200:
                r.read()
                raise SyncError(f"{source.code}: the feed answered {r.status_code}: {r.text[:200]}")
            body = bytearray()
            for chunk in r.iter_bytes():
                body += chunk
                if len(body) > MAX_PAGE_BYTES:
                    raise SyncError(f"{source.code}: a feed page over {MAX_PAGE_BYTES} bytes")
    except httpx.TimeoutException:
        raise SyncError(f"{source.code}: the feed did not answer in time") from None
    except httpx.HTTPError as exc:
        raise SyncError(f"{source.code}: cannot reach the feed: {exc.__class__.__name__}") from None
    return parse_page(source.code, bytes(body), after, limit)


def parse_page(code: str, body: bytes, after: int, limit: int) -> Page:
    """The page, or :class:`SyncError` when its envelope is malformed (then nothing of it is
    applied and the cursor stays)."""
    import json

    try:
        data = json.loads(body)
    except ValueError:
        raise SyncError(f"{code}: the feed page is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("changes"), list):
        raise SyncError(f"{code}: the feed page has no list of changes")
    nxt, last = data.get("next"), data.get("last")
    if not (isinstance(nxt, int) and isinstance(last, int)) or isinstance(nxt, bool):
        raise SyncError(f"{code}: the feed page's cursor is malformed")
    changes = data["changes"]
    if len(changes) > limit:
        raise SyncError(f"{code}: the feed sent {len(changes)} changes where {limit} were asked")
    previous = after
    for change in changes:
        if not (
            isinstance(change, dict)
            and isinstance(change.get("position"), int)
            and not isinstance(change.get("position"), bool)
            and isinstance(change.get("record"), str)
            and isinstance(change.get("origin"), str)
            and isinstance(change.get("id"), str)
            and change.get("kind") in (Change.UPSERT, Change.TOMBSTONE)
            and isinstance(change.get("version"), int)
        ):
            raise SyncError(f"{code}: a change after position {previous} is malformed")
        if change["position"] <= previous:
            raise SyncError(f"{code}: positions do not increase after {previous}")
        previous = change["position"]
    if nxt < previous or (changes and nxt != previous):
        raise SyncError(f"{code}: the feed's next cursor {nxt} does not follow its changes")
    return Page(changes, nxt, max(last, nxt))


def is_last(page: Page) -> bool:
    return not page.changes or page.next >= page.last


class Prefetch:
    """Pages of ``source``'s feed from ``after`` on, fetched one ahead in a thread of their own
    while the sync checks and writes the page before. ``get`` hands them over in order; a
    failed fetch is raised by the ``get`` that would have returned its page. The thread stops
    after the last page, after a failure, or when the sync is done with it."""

    def __init__(self, client: httpx.Client, source: Peer, after: int, limit: int) -> None:
        self._pages: queue.Queue[Page | Exception] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(client, source, after, limit),
            name=f"federation-fetch-{source.code}",
            daemon=True,
        )
        self._thread.start()

    def _run(self, client: httpx.Client, source: Peer, after: int, limit: int) -> None:
        try:
            while not self._stop.is_set():
                try:
                    page: Page | Exception = fetch(client, source, after, limit)
                except Exception as exc:  # handed to the sync, which raises it
                    page = exc
                while not self._stop.is_set():
                    try:
                        self._pages.put(page, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if isinstance(page, Exception) or is_last(page):
                    return
                after = page.next
        finally:
            connections.close_all()  # this thread's own, if the cache opened one

    def get(self) -> Page:
        item = self._pages.get()
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        """Stop fetching; a fetch under way ends with the sync's HTTP client."""
        self._stop.set()


class SignatureWorkers:
    """Worker processes that verify a page's signatures while the sync writes the page before
    (see ``federation.signatures``); started on the first page long enough to need them."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self.count = max(1, min(os.cpu_count() or 1, 4))
        self._pool: ProcessPoolExecutor | None = None
        self._broken = False

    def submit(self, page: Page) -> list[Future[list[str | None]]]:
        """Have ``page``'s signatures verified against the keys read so far; nothing to wait
        for when the page is short, no key is known yet, or the workers cannot run."""
        keys = self.ring.public_keys()
        if len(page.changes) < PARALLEL_FROM or not keys or self._broken:
            return []
        tokens = [c["record"] for c in page.changes]
        step = -(-len(tokens) // self.count)
        try:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.count,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=watch_parent,
                )
            return [
                self._pool.submit(signers, tokens[start : start + step], keys)
                for start in range(0, len(tokens), step)
            ]
        except (OSError, RuntimeError, BrokenProcessPool):
            self._broken = True  # the sync goes on, verifying every signature itself
            return []

    def collect(self, page: Page, pending: list[Future[list[str | None]]]) -> None:
        """Hand what the workers found for ``page`` to the key ring, for ``check``."""
        found: list[str | None] = []
        try:
            for future in pending:
                found += future.result()
        except BrokenProcessPool:
            self._broken = True
            found = []
        if len(found) != len(page.changes):
            found = [None] * len(page.changes)
        self.ring.remember([c["record"] for c in page.changes], found)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


# --- checking -------------------------------------------------------------------------------


class Refused(Exception):
    pass


@dataclass
class Accepted:
    change: dict[str, Any]
    record: dict[str, Any]
    wanted: bool


def check_page(
    source: Peer, page: Page, known: dict[str, Any]
) -> tuple[list[Accepted], list[tuple[dict[str, Any], str]]]:
    """The page's accepted records and its refused changes with their reasons, in order."""
    accepted: list[Accepted] = []
    refused: list[tuple[dict[str, Any], str]] = []
    held = _held_versions(page.changes)
    for change in page.changes:
        try:
            item = check(source, change, known, held)
        except Refused as exc:
            refused.append((change, str(exc)))
            continue
        if item is not None:
            accepted.append(item)
    return accepted, refused


def _known_competencies() -> dict[str, dict[str, Any]]:
    """The KCM terms this instance knows, by IRI, as catalogue rows show them."""
    terms = SubTheme.objects.filter(retired=False).select_related("theme__area")
    return {term.iri: term_snapshot(term, level=0) for term in terms}


def check(
    source: Peer,
    change: dict[str, Any],
    known: dict[str, Any],
    held: dict[str, int] | None = None,
) -> Accepted | None:
    """The verified record of one change; None when it needs no action; :class:`Refused`
    with the reason when it must be quarantined."""
    config = federation()
    me = settings.PORTAL.federation_code
    origin = change["origin"]
    if len(change["record"].encode()) > MAX_RECORD_BYTES:
        raise Refused(f"the record is over {MAX_RECORD_BYTES // 1024} KB")
    if origin == me:
        return None  # our own course, coming back from the hub: ours is the original
    if not config.is_hub and source.code != config.hub:
        raise Refused("this instance pulls only the hub")
    if config.is_hub and origin != source.code:
        raise Refused(f"{source.code} may publish only its own courses, not {origin}'s")
    keys_url = origin_keys_url(origin)
    if not keys_url:
        raise Refused(f"unknown origin {origin[:64]!r}")
    try:
        record = verify(change["record"], keys_url)
    except SignatureError as exc:
        raise Refused(f"signature: {exc}") from None
    try:
        validate(record)
    except RecordError as exc:
        raise Refused(f"schema: {exc}") from None
    if record["provider"]["identifier"] != origin:
        raise Refused("the record names another origin than the feed says")
    if str(course_uuid(record)) != change["id"] or record["version"] != change["version"]:
        raise Refused("the record does not match its entry in the feed")
    held_version = (held or {}).get(change["id"])
    if held_version is not None and record["version"] < held_version:
        raise Refused(f"replays version {record['version']}; version {held_version} is held")
    withdrawn = record["creativeWorkStatus"] == "Withdrawn"
    unknown = [t["@id"] for t in record["teaches"] if t["@id"] not in known]
    if unknown and not withdrawn:
        raise Refused(f"unknown competency {unknown[0][:120]}")
    return Accepted(change, record, wanted=not withdrawn and _subscribed(record, known))


def _held_versions(changes: list[dict[str, Any]]) -> dict[str, int]:
    ids = []
    for change in changes:
        try:
            ids.append(uuid.UUID(change["id"]))
        except ValueError:
            continue
    rows = CatalogueEntry.objects.filter(uuid__in=ids).values_list("uuid", "version")
    return {str(course): version for course, version in rows}


def _subscribed(record: dict[str, Any], known: dict[str, Any]) -> bool:
    subscribe = federation().subscribe
    if subscribe is None:
        return True
    languages = set(subscribe.languages)
    areas = set(subscribe.competency_areas)
    if languages and not languages & set(record["inLanguage"]):
        return False
    course_areas = {known[t["@id"]]["area"] for t in record["teaches"] if t["@id"] in known}
    return not areas or not course_areas or bool(areas & course_areas)


# --- applying -------------------------------------------------------------------------------


def apply_page(
    source: Peer,
    state: PeerState,
    page: Page,
    accepted: list[Accepted],
    refused: list[Any],
    known: dict[str, Any],
) -> int:
    """Write a page's records, its quarantined ones and the cursor in one transaction;
    ``known`` is the sync's map of KCM terms (read once per sync, not per page)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # The commit need not wait for the disk: were the database server itself to crash,
            # the last pages would be lost with the cursor that covers them, and fetched again.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        locked = PeerState.objects.select_for_update().get(pk=state.pk)
        if locked.cursor != state.cursor:
            raise SyncError(f"{source.code}: the cursor moved under this sync; run it again")
        latest = _latest(accepted)
        if connection.vendor == "postgresql":
            applied = _merge_records(latest, known)
        else:
            applied = _apply_records(latest, known)
        if federation().is_hub:
            for item in applied:
                append(
                    course=uuid.UUID(item.change["id"]),
                    origin=item.change["origin"],
                    kind=item.change["kind"],
                    version=item.record["version"],
                    kid="",
                    jws=item.change["record"],
                )
        Quarantined.objects.bulk_create(
            [
                Quarantined(
                    peer=source.code,
                    position=c["position"],
                    uuid=str(c.get("id", ""))[:64],
                    reason=reason[:1000],
                    payload=str(c.get("record", ""))[:65536],
                )
                for c, reason in refused
            ],
            ignore_conflicts=True,
        )
        locked.cursor = page.next
        locked.peer_position = page.last
        locked.last_success = timezone.now()
        locked.applied = len(applied)
        locked.last_error = ""
        locked.save()
        state.cursor = locked.cursor
        if applied:
            bump_generation()
    return len(applied)


def _latest(accepted: list[Accepted]) -> list[Accepted]:
    """One item per course, its highest version (the later one of equals), in page order."""
    latest: dict[str, Accepted] = {}
    for item in accepted:
        seen = latest.get(item.change["id"])
        if seen is None or item.record["version"] >= seen.record["version"]:
            latest[item.change["id"]] = item
    return list(latest.values()) if len(latest) < len(accepted) else accepted


def _fields(item: Accepted, known: dict[str, Any]) -> dict[str, Any]:
    fields = entry_fields(item.record, known)
    fields["retired"] = fields["retired"] or not item.wanted
    return fields


# Writing a page on PostgreSQL: its rows are copied into a temporary table, then merged into the
# catalogue in one statement that skips our own courses and older versions (as the ORM path
# below does) and names the rows it wrote; the language and competency rows of those are then
# replaced from the same table. It empties at each commit; it is emptied before use too, for a
# page written inside a transaction that does not commit between pages (the tests').
STAGE = "federation_sync_stage"
STAGE_COLUMNS = {
    "uuid": "uuid",
    "iri": "text",
    "origin": "text",
    "origin_name": "text",
    "provider": "text",
    "provider_name": "jsonb",
    "name": "jsonb",
    "description": "jsonb",
    "languages": "jsonb",
    "duration_minutes": "integer",
    "competencies": "jsonb",
    "url": "text",
    "version": "integer",
    "modified": "timestamptz",
    "retired": "boolean",
    "search_text": "text",
}
JSON_FIELDS = ("provider_name", "name", "description", "languages", "competencies")


def _merge_sql() -> str:
    entry = CatalogueEntry._meta.db_table
    column = {f.name: f.column for f in CatalogueEntry._meta.concrete_fields}
    staged = list(STAGE_COLUMNS)
    # Set on a new row only: the local overrides a sync keeps, and the fields a federated row
    # never has (a page here, internal).
    fresh = {
        "page": "NULL",
        "internal": "false",
        "hidden": "false",
        "featured": "false",
        "local_name": "'{}'::jsonb",
        "datestamp": "%(now)s",
    }
    targets = ", ".join(column[name] for name in [*staged, *fresh])
    values = ", ".join([*staged, *fresh.values()])
    updates = ", ".join(
        f"{column[name]} = EXCLUDED.{column[name]}"
        for name in [*staged, "page", "internal", "datestamp"]
        if name != "uuid"
    )
    origin, version = column["origin"], column["version"]
    return (
        f"INSERT INTO {entry} AS e ({targets}) SELECT {values} FROM {STAGE} "
        f"ON CONFLICT ({column['uuid']}) DO UPDATE SET {updates} "
        f"WHERE e.{origin} <> %(me)s AND e.{version} <= EXCLUDED.{version} "
        f"RETURNING e.{column['id']}, e.{column['uuid']}"
    )


def _children_sql() -> tuple[str, str]:
    """Statements writing the language and competency rows of the entries ``%(ids)s`` from
    the staged rows (a competency named twice counts once, at its first level)."""
    entry = CatalogueEntry._meta.db_table
    languages = (
        f"INSERT INTO {EntryLanguage._meta.db_table} (entry_id, code) "
        f"SELECT DISTINCT e.id, code FROM {STAGE} s JOIN {entry} e ON e.uuid = s.uuid "
        "CROSS JOIN LATERAL jsonb_array_elements_text(s.languages) AS code "
        "WHERE e.id = ANY(%(ids)s)"
    )
    terms = (
        f"INSERT INTO {EntryCompetency._meta.db_table} (entry_id, sub_theme_id, level) "
        "SELECT DISTINCT ON (e.id, t.id) e.id, t.id, (c.term ->> 'level')::smallint "
        f"FROM {STAGE} s JOIN {entry} e ON e.uuid = s.uuid "
        "CROSS JOIN LATERAL jsonb_array_elements(s.competencies) WITH ORDINALITY AS c(term, n) "
        f"JOIN {SubTheme._meta.db_table} t ON t.iri = c.term ->> 'iri' "
        "WHERE e.id = ANY(%(ids)s) ORDER BY e.id, t.id, c.n"
    )
    return languages, terms


def _merge_records(accepted: list[Accepted], known: dict[str, Any]) -> list[Accepted]:
    """Write ``accepted`` set-based (PostgreSQL); the items whose rows were written."""
    if not accepted:
        return []
    by_course: dict[uuid.UUID, Accepted] = {}
    with connection.cursor() as cursor:
        columns = ", ".join(f"{name} {kind}" for name, kind in STAGE_COLUMNS.items())
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} ({columns}) ON COMMIT DELETE ROWS"
        )
        cursor.execute(f"DELETE FROM {STAGE}")
        with cursor.copy(f"COPY {STAGE} ({', '.join(STAGE_COLUMNS)}) FROM STDIN") as copy:
            for item in accepted:
                course = uuid.UUID(item.change["id"])
                fields = _fields(item, known)
                by_course[course] = item
                copy.write_row(
                    [
                        json.dumps(fields[name], ensure_ascii=False)
                        if name in JSON_FIELDS
                        else course
                        if name == "uuid"
                        else fields[name]
                        for name in STAGE_COLUMNS
                    ]
                )
        me = settings.PORTAL.federation_code
        cursor.execute(_merge_sql(), {"me": me, "now": timezone.now()})
        written: list[tuple[int, uuid.UUID]] = cursor.fetchall()
        if not written:
            return []
        ids = {"ids": [entry_id for entry_id, _ in written]}
        for model in (EntryLanguage, EntryCompetency):
            table = model._meta.db_table
            cursor.execute(f"DELETE FROM {table} WHERE entry_id = ANY(%(ids)s)", ids)
        for statement in _children_sql():
            cursor.execute(statement, ids)
    # In page order, as the hub appends them to its own feed.
    order = {course: n for n, course in enumerate(by_course)}
    return [by_course[course] for course in sorted((c for _, c in written), key=order.__getitem__)]


def _apply_records(accepted: list[Accepted], known: dict[str, Any]) -> list[Accepted]:
    """Write ``accepted`` with the ORM (SQLite); the items whose rows were written."""
    me = settings.PORTAL.federation_code
    ids = [uuid.UUID(a.change["id"]) for a in accepted]
    held = {e.uuid: e for e in CatalogueEntry.objects.filter(uuid__in=ids)}
    fresh: list[CatalogueEntry] = []
    updated: list[CatalogueEntry] = []
    written: list[Accepted] = []
    for item in accepted:
        course = uuid.UUID(item.change["id"])
        entry = held.get(course)
        if entry is not None and (entry.origin == me or entry.version > item.record["version"]):
            continue  # never overwrite our own course; an older version changes nothing
        fields = _fields(item, known)
        if entry is None:
            fresh.append(CatalogueEntry(uuid=course, **fields))
        else:
            for name, value in fields.items():
                setattr(entry, name, value)
            updated.append(entry)
        written.append(item)
    CatalogueEntry.objects.bulk_create(fresh, batch_size=500)
    if updated:
        CatalogueEntry.objects.bulk_update(updated, FIELDS, batch_size=500)
    entries = fresh + updated
    EntryLanguage.objects.filter(entry__in=updated).delete()
    EntryCompetency.objects.filter(entry__in=updated).delete()
    sub_themes = dict(SubTheme.objects.values_list("iri", "id"))
    EntryLanguage.objects.bulk_create(
        [EntryLanguage(entry=e, code=code) for e in entries for code in e.languages],
        batch_size=1000,
        ignore_conflicts=True,
    )
    EntryCompetency.objects.bulk_create(
        [
            EntryCompetency(entry=e, sub_theme_id=sub_themes[c["iri"]], level=c["level"])
            for e in entries
            for c in e.competencies
            if c["iri"] in sub_themes
        ],
        batch_size=1000,
        ignore_conflicts=True,
    )
    return written


FIELDS = [
    "iri",
    "origin",
    "origin_name",
    "provider",
    "provider_name",
    "name",
    "description",
    "languages",
    "duration_minutes",
    "competencies",
    "url",
    "page",
    "version",
    "modified",
    "internal",
    "retired",
    "search_text",
]


# --- the hub's framework and posts ----------------------------------------------------------

UNKNOWN_COMPETENCY = "unknown competency "


def fetch_framework(client: httpx.Client, source: Peer) -> str | None:
    """The hub's signed framework document; None when the hub publishes none (404)."""
    url = f"{source.url}/federation/v1/framework"
    headers = {"Authorization": f"Bearer {access_token()}", "Accept": "application/jose"}
    try:
        with client.stream("GET", url, headers=headers) as r:
            if r.status_code == 404:
                r.read()
                return None
            if r.status_code != 200:
                r.read()
                raise SyncError(
                    f"{source.code}: the framework document answered {r.status_code}: "
                    f"{r.text[:200]}"
                )
            body = bytearray()
            for chunk in r.iter_bytes():
                body += chunk
                if len(body) > hub_framework.MAX_DOCUMENT:
                    raise SyncError(
                        f"{source.code}: the framework document is over "
                        f"{hub_framework.MAX_DOCUMENT // 1024} KB"
                    )
    except httpx.TimeoutException:
        raise SyncError(
            f"{source.code}: the feed did not answer in time (its framework document)"
        ) from None
    except httpx.HTTPError as exc:
        # Worded as the feed's own failure: the framework is read first, so an unreachable
        # hub shows here.
        raise SyncError(
            f"{source.code}: cannot reach the feed (its framework document): "
            f"{exc.__class__.__name__}"
        ) from None
    try:
        return bytes(body).decode("ascii")
    except UnicodeDecodeError:
        raise SyncError(f"{source.code}: framework document: not a compact JWS") from None


def sync_framework(client: httpx.Client, source: Peer) -> tuple[str, int]:
    """Apply the hub's framework document, then the records quarantined for a competency
    unknown here, in one transaction: what changed, and how many records were released."""
    token = fetch_framework(client, source)
    if token is None:
        return "the hub publishes no framework", 0
    keys_url = origin_keys_url(source.code)
    if not keys_url:
        raise SyncError(f"{source.code}: framework document: the hub's keys URL is not known")
    try:
        parsed = hub_framework.parse(hub_framework.verify(token, keys_url), source.code)
        with transaction.atomic():
            result = hub_framework.apply(parsed, source.code)
            released = 0 if result.unchanged else release_quarantined(source)
    except hub_framework.FrameworkError as exc:
        raise SyncError(f"{source.code}: {exc}") from None
    return str(result), released


def release_quarantined(source: Peer) -> int:
    """Check again, and apply, the records of ``source`` quarantined for naming a competency
    this instance did not know; those still refused keep their row, with the reason now."""
    rows = list(
        Quarantined.objects.filter(
            peer=source.code, reason__startswith=UNKNOWN_COMPETENCY
        ).order_by("position")
    )
    if not rows:
        return 0
    known = _known_competencies()
    changes: dict[int, dict[str, Any]] = {}
    for row in rows:
        try:
            record = unverified_payload(row.payload, "record")
            changes[row.pk] = {
                "position": row.position,
                "id": row.uuid,
                "origin": str(record["provider"]["identifier"]),
                "version": int(record["version"]),
                "kind": Change.TOMBSTONE
                if record.get("creativeWorkStatus") == "Withdrawn"
                else Change.UPSERT,
                "record": row.payload,
            }
        except (ValueError, TypeError, KeyError):
            continue  # cut short when quarantined, or not a record: it stays as it is
    held = _held_versions(list(changes.values()))
    accepted: list[Accepted] = []
    released: list[int] = []
    for row in rows:
        change = changes.get(row.pk)
        if change is None:
            continue
        try:
            item = check(source, change, known, held)
        except Refused as exc:
            if str(exc) != row.reason:
                Quarantined.objects.filter(pk=row.pk).update(reason=str(exc)[:1000])
            continue
        released.append(row.pk)
        if item is not None:
            accepted.append(item)
    latest = _latest(accepted)
    applied = (
        _merge_records(latest, known)
        if connection.vendor == "postgresql"
        else _apply_records(latest, known)
    )
    Quarantined.objects.filter(pk__in=released).delete()
    if applied:
        bump_generation()
    return len(released)


def sync(code: str, *, limit: int = PAGE_LIMIT, max_pages: int = MAX_PAGES) -> SyncResult:
    """Pull ``code``'s feed until it has nothing newer; see the module docstring."""
    source = peer(code)
    result = SyncResult(source.code)
    with ExitStack() as stack:
        stack.enter_context(exclusive(source.code))
        client = stack.enter_context(httpx.Client(timeout=TIMEOUT))
        workers = SignatureWorkers(stack.enter_context(key_ring()))
        stack.callback(workers.close)
        state, _ = PeerState.objects.get_or_create(peer=source.code)
        try:
            if not federation().is_hub and source.code == federation().hub:
                result.framework, result.released = sync_framework(client, source)
            known = _known_competencies()
            ended = SyncError(f"{source.code}: the feed did not end after {max_pages} pages")
            if max_pages < 1:
                raise ended
            feed = Prefetch(client, source, state.cursor, limit)
            stack.callback(feed.close)
            page = feed.get()
            pending: list[Future[list[str | None]]] = []
            while True:
                workers.collect(page, pending)
                accepted, refused = check_page(source, page, known)
                # The next page's signatures are verified while this one is written; a failure
                # to fetch it is raised once this page is written, as it would have been.
                following: Page | SyncError | None = None
                if not is_last(page) and result.pages + 1 < max_pages:
                    try:
                        following = feed.get()
                    except SyncError as exc:
                        following = exc
                pending = workers.submit(following) if isinstance(following, Page) else []
                result.applied += apply_page(source, state, page, accepted, refused, known)
                result.quarantined += len(refused)
                result.pages += 1
                result.cursor, result.last = page.next, page.last
                if is_last(page):
                    return result
                if result.pages >= max_pages:
                    raise ended
                if isinstance(following, SyncError):
                    raise following
                page = following if following is not None else feed.get()
        except SyncError as exc:
            PeerState.objects.filter(pk=state.pk).update(
                last_error=str(exc)[:1000], last_error_at=timezone.now()
            )
            raise
