"""Pulling a peer's change feed into this instance's catalogue.

A tenant pulls the hub, filtered by its spec's subscription; the hub pulls every tenant that
publishes and appends what it accepts to its own feed, origin signature intact, for the
others. Each page is checked record by record: a record that fails (size, origin, signature,
schema, unknown competency, an older version than the one held) is quarantined with its
reason and the rest go on. The page's records, its quarantined ones and the new cursor are
written in one transaction, so a sync killed at any moment loses nothing and applies nothing
twice. One sync per peer runs at a time: a second one exits with a clear message.
"""

from __future__ import annotations

import fcntl
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from tenant_portal.catalogue.models import CatalogueEntry, EntryCompetency, EntryLanguage
from tenant_portal.catalogue.services import term_snapshot
from tenant_portal.competencies.models import SubTheme
from tenant_portal.core.page_cache import bump_generation
from tenant_portal.federation.changes import append
from tenant_portal.federation.models import Change, PeerState, Quarantined
from tenant_portal.federation.records import RecordError, course_uuid, entry_fields, validate
from tenant_portal.federation.signing import SignatureError, verify
from tenant_portal.settings.contract import Federation

PAGE_LIMIT = 200
MAX_PAGES = 100_000
MAX_PAGE_BYTES = 64 * 1024 * 1024
MAX_RECORD_BYTES = 256 * 1024
TIMEOUT = httpx.Timeout(10.0, read=30.0)
SYNC_LOCK = 0x4B4A_5359_4E43  # "KJSYNC", plus the peer's hash


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


def federation() -> Federation:
    return settings.PORTAL.federation


def peers() -> list[Peer]:
    return [Peer(p.code, p.url) for p in federation().peers]


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


# --- checking -------------------------------------------------------------------------------


class Refused(Exception):
    pass


@dataclass
class Accepted:
    change: dict[str, Any]
    record: dict[str, Any]
    wanted: bool


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
    keys_url = config.keys.get(origin)
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
        locked = PeerState.objects.select_for_update().get(pk=state.pk)
        if locked.cursor != state.cursor:
            raise SyncError(f"{source.code}: the cursor moved under this sync; run it again")
        applied = _apply_records(source, accepted, known)
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
        locked.applied = applied
        locked.last_error = ""
        locked.save()
        state.cursor = locked.cursor
        if applied:
            bump_generation()
    return applied


def _apply_records(source: Peer, accepted: list[Accepted], known: dict[str, Any]) -> int:
    me = settings.PORTAL.federation_code
    ids = [uuid.UUID(a.change["id"]) for a in accepted]
    held = {e.uuid: e for e in CatalogueEntry.objects.filter(uuid__in=ids)}
    fresh: list[CatalogueEntry] = []
    updated: list[CatalogueEntry] = []
    for item in accepted:
        course = uuid.UUID(item.change["id"])
        entry = held.get(course)
        if entry is not None and (entry.origin == me or entry.version > item.record["version"]):
            continue  # never overwrite our own course; an older version changes nothing
        fields = entry_fields(item.record, known)
        fields["retired"] = fields["retired"] or not item.wanted
        if entry is None:
            fresh.append(CatalogueEntry(uuid=course, **fields))
        else:
            for name, value in fields.items():
                setattr(entry, name, value)
            updated.append(entry)
        if federation().is_hub:
            append(
                course=course,
                origin=item.change["origin"],
                kind=item.change["kind"],
                version=item.record["version"],
                kid="",
                jws=item.change["record"],
            )
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
    return len(entries)


FIELDS = [
    "iri",
    "origin",
    "origin_name",
    "provider",
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


def sync(code: str, *, limit: int = PAGE_LIMIT, max_pages: int = MAX_PAGES) -> SyncResult:
    """Pull ``code``'s feed until it has nothing newer; see the module docstring."""
    source = peer(code)
    result = SyncResult(source.code)
    with exclusive(source.code), httpx.Client(timeout=TIMEOUT) as client:
        state, _ = PeerState.objects.get_or_create(peer=source.code)
        try:
            known = _known_competencies()
            while True:
                if result.pages >= max_pages:
                    raise SyncError(f"{source.code}: the feed did not end after {max_pages} pages")
                page = fetch(client, source, state.cursor, limit)
                accepted, refused = [], []
                held = _held_versions(page.changes)
                for change in page.changes:
                    try:
                        item = check(source, change, known, held)
                    except Refused as exc:
                        refused.append((change, str(exc)))
                        continue
                    if item is not None:
                        accepted.append(item)
                result.applied += apply_page(source, state, page, accepted, refused, known)
                result.quarantined += len(refused)
                result.pages += 1
                result.cursor, result.last = page.next, page.last
                if not page.changes or page.next >= page.last:
                    return result
        except SyncError as exc:
            PeerState.objects.filter(pk=state.pk).update(
                last_error=str(exc)[:1000], last_error_at=timezone.now()
            )
            raise
