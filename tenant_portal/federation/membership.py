"""Who belongs to the federation, and under which keys URL each member's records are trusted.

On the hub the members are :class:`~tenant_portal.federation.models.Member` rows: those the
deployment's spec folder declares (``KARMAYOGI_FEDERATION.members``, recorded the first time
membership is read and kept in step with the settings) and those admitted from a signed join
request (:mod:`tenant_portal.federation.handshake`). The hub itself is always a member. Every
feed and xAPI call to the hub is checked here (through ``auth.caller``), with what is read
held for :data:`CACHE_SECONDS` only, so a suspension bites at the next call, not when the
caller's token expires.

The hub publishes its members as a signed directory at ``/federation/v1/members``; a tenant
reads it (checked against the hub's keys) to learn each origin's keys URL, so a record the hub
relays is still checked against its origin's keys.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from tenant_portal.catalogue.models import CatalogueEntry
from tenant_portal.core.page_cache import bump_generation, generation, set_generation
from tenant_portal.federation import documents
from tenant_portal.federation.auth import Unauthorized
from tenant_portal.federation.models import Change, Member

log = logging.getLogger(__name__)

CACHE_SECONDS = 5
DIRECTORY_SECONDS = 60
DIRECTORY_TYPE = "karmayogi-member-directory"
DIRECTORY_MEDIA = "karmayogi-directory+jws"
MAX_FUTURE_SECONDS = 300
GENERATION_KEY = "federation:members:generation"


class MembershipError(Exception):
    """A change to the members that cannot be made; the message is one line."""


class DirectoryError(Exception):
    """The hub's member directory cannot be read or is not to be trusted."""


# --- this instance ---------------------------------------------------------------------------


def keys_url_of(portal_url: str) -> str:
    return f"{portal_url.rstrip('/')}/federation/v1/keys"


def own_keys_url() -> str:
    return keys_url_of(settings.PORTAL.portal_url)


def is_hub() -> bool:
    return bool(settings.PORTAL.federation.is_hub)


# --- the hub's members -----------------------------------------------------------------------


@dataclass(frozen=True)
class Standing:
    """What a check of one caller needs, as cached."""

    status: str
    keys_url: str
    name: str


def _generation() -> str:
    return generation(GENERATION_KEY)


def forget() -> None:
    """Drop every cached standing and the cached directory (after a change of members)."""
    set_generation(GENERATION_KEY)


def ensure_declared(*, prune: bool = False) -> None:
    """Record the members the settings declare, and keep their URLs, name and publishing in
    step with the settings while they stay declared; a status is never reset here.

    With ``prune``, a member the settings declared and no longer do (its spec left the hub's
    folder: `tenant remove`) is a member no more. Only the management commands prune (each
    reads the settings as rendered now): a running portal keeps the settings it started with
    until it restarts, and must not undo what a newer rendering recorded.
    """
    if not is_hub():
        return
    declared = [m for m in settings.PORTAL.federation.members if m.code != _me()]
    if prune:
        gone, _ = (
            Member.objects.filter(source=Member.SPEC)
            .exclude(code__in=[d.code for d in declared])
            .delete()
        )
        if gone:
            forget()
    if not declared:
        return
    held = {m.code: m for m in Member.objects.filter(code__in=[d.code for d in declared])}
    fresh: list[Member] = []
    for item in declared:
        wanted = {
            "name": item.name,
            "tenant_type": item.tenant_type,
            "portal_url": item.portal_url,
            "keys_url": item.keys_url,
            "publish": item.publish,
        }
        row = held.get(item.code)
        if row is None:
            fresh.append(
                Member(code=item.code, source=Member.SPEC, admitted_by=Member.SPEC, **wanted)
            )
        elif row.source == Member.SPEC and any(getattr(row, k) != v for k, v in wanted.items()):
            for name, value in wanted.items():
                setattr(row, name, value)
            row.save(update_fields=[*wanted, "changed_at"])
            forget()
    if fresh:
        Member.objects.bulk_create(fresh, ignore_conflicts=True)
        forget()


def _me() -> str:
    return str(settings.PORTAL.federation_code)


def standing(code: str) -> Standing | None:
    """``code``'s membership as the hub holds it (cached for a few seconds); None: unknown."""
    key = f"federation:member:{_generation()}:{code}"
    cached = cache.get(key)
    if cached is None:
        ensure_declared()
        row = Member.objects.filter(code=code).values("status", "keys_url", "name").first()
        cached = row or {}
        cache.set(key, cached, CACHE_SECONDS)
    return Standing(**cached) if cached else None


def require_member(code: str) -> None:
    """Return if ``code`` is an active member of the hub's federation (the hub always is);
    :class:`~tenant_portal.federation.auth.Unauthorized` with the reason otherwise."""
    if code == _me():
        return
    found = standing(code)
    if found is None:
        raise Unauthorized(f"{code} is not a member of this federation")
    if found.status != Member.ACTIVE:
        raise Unauthorized(f"the membership of {code} is suspended")


def members(*, prune: bool = False) -> list[Member]:
    ensure_declared(prune=prune)
    return list(Member.objects.all())


def pulled_peers() -> list[tuple[str, str]]:
    """(code, portal URL) of every instance this one pulls: a tenant, the peers its settings
    name; the hub, those and every active member that publishes (a suspended member is not
    pulled), each once."""
    rendered = [(p.code, p.url) for p in settings.PORTAL.federation.peers]
    if not is_hub():
        return rendered
    rows = members(prune=True)  # run by `federation_sync`, with the settings rendered now
    suspended = {m.code for m in rows if m.status != Member.ACTIVE}
    out: dict[str, str] = {}
    for code, url in rendered:
        if code not in suspended:
            out.setdefault(code, url)
    for row in rows:
        if row.status == Member.ACTIVE and row.publish:
            out.setdefault(row.code, row.portal_url)
    return list(out.items())


def member_name(code: str) -> str | None:
    """A display name for ``code`` from the members (the hub) or the directory held (a
    tenant), without reaching the network."""
    if code == _me():
        return str(settings.PORTAL.site_name)
    if is_hub():
        found = standing(code)
        return found.name if found else None
    held = _held.get((settings.PORTAL.federation.hub_url, settings.PORTAL.federation.hub))
    entry = held[1].get(code) if held else None
    return str(entry["name"]) if entry and isinstance(entry.get("name"), str) else None


# --- changing members ------------------------------------------------------------------------


def _member(code: str) -> Member:
    if not is_hub():
        raise MembershipError("this instance is not the federation's hub")
    ensure_declared()
    row = Member.objects.select_for_update().filter(code=code).first()
    if row is None:
        raise MembershipError(f"{code} is not a member of this federation")
    return row


def _retire_courses(code: str) -> int:
    retired = CatalogueEntry.objects.filter(origin=code, retired=False).update(retired=True)
    if retired:
        bump_generation()
    return int(retired)


def _restore_courses(code: str) -> int:
    """Bring back ``code``'s courses that the hub withdrew, except those its origin withdrew
    meanwhile or before (their latest change is a tombstone)."""
    offered = Change.objects.filter(origin=code, kind=Change.UPSERT).values("uuid")
    restored = CatalogueEntry.objects.filter(origin=code, retired=True, uuid__in=offered).update(
        retired=False
    )
    if restored:
        bump_generation()
    return int(restored)


@transaction.atomic
def member_suspend(*, code: str, withdraw_courses: bool = False, by: str = "") -> Member:
    """Suspend ``code``: its next call to the hub gets 401. With ``withdraw_courses`` its
    courses leave the hub's catalogue until it is resumed."""
    row = _member(code)
    row.status = Member.SUSPENDED
    if withdraw_courses:
        _retire_courses(code)
        row.courses_withdrawn = True
    row.save(update_fields=["status", "courses_withdrawn", "changed_at"])
    transaction.on_commit(forget)
    forget()
    log.info("member %s suspended by %s", code, by or "an operator")
    return row


@transaction.atomic
def member_resume(*, code: str, by: str = "") -> Member:
    """Make ``code`` active again, bringing back the courses its suspension withdrew."""
    row = _member(code)
    if row.courses_withdrawn:
        _restore_courses(code)
    row.status = Member.ACTIVE
    row.courses_withdrawn = False
    row.save(update_fields=["status", "courses_withdrawn", "changed_at"])
    transaction.on_commit(forget)
    forget()
    log.info("member %s resumed by %s", code, by or "an operator")
    return row


@transaction.atomic
def member_remove(*, code: str, by: str = "") -> int:
    """Delete ``code``'s membership and retire its courses on the hub; how many were retired.

    A member the spec folder declares cannot be removed here: it would be recorded again at
    the next read of the settings (take it out of the spec, or suspend it)."""
    row = _member(code)
    if row.source == Member.SPEC:
        raise MembershipError(
            f"{code} is declared by the deployment's spec; take it out of the spec or suspend it"
        )
    row.delete()
    retired = _retire_courses(code)
    transaction.on_commit(forget)
    forget()
    log.info("member %s removed by %s (%d course(s) retired)", code, by or "an operator", retired)
    return retired


# --- the directory ---------------------------------------------------------------------------


def member_json(row: Member) -> dict[str, Any]:
    return {
        "code": row.code,
        "name": row.name,
        "tenantType": row.tenant_type,
        "portalUrl": row.portal_url,
        "keysUrl": row.keys_url,
        "status": row.status,
        "publish": row.publish,
    }


def directory() -> dict[str, Any]:
    """The hub's member directory (the hub first), as signed at ``/federation/v1/members``."""
    portal = settings.PORTAL
    hub = {
        "code": _me(),
        "name": portal.site_name,
        "tenantType": portal.tenant_type,
        "portalUrl": portal.portal_url,
        "keysUrl": own_keys_url(),
        "status": Member.ACTIVE,
        "publish": portal.federation.publish,
    }
    return {
        "type": DIRECTORY_TYPE,
        "version": 1,
        "hub": _me(),
        "issued": int(time.time()),
        "members": [hub, *(member_json(m) for m in members() if m.code != _me())],
    }


def signed_directory() -> str:
    """The directory as a compact JWS, signed again at most every few seconds."""
    key = f"federation:directory:{_generation()}"
    token = cache.get(key)
    if token is None:
        token = documents.sign(directory(), DIRECTORY_MEDIA)
        cache.set(key, token, CACHE_SECONDS)
    return str(token)


# A tenant's copy of the hub's directory: (hub URL, hub code) -> (when read, members by code).
_held: dict[tuple[str, str], tuple[float, dict[str, dict[str, Any]]]] = {}
_held_lock = threading.Lock()


def forget_directory() -> None:
    with _held_lock:
        _held.clear()


def read_directory(hub_url: str, hub: str) -> dict[str, dict[str, Any]]:
    """The members listed in the directory at ``hub_url``, by code, once its signature checks
    out against the keys at ``<hub_url>/federation/v1/keys`` and its payload is the hub's."""
    url = f"{hub_url}/federation/v1/members"
    try:
        response = httpx.get(url, timeout=10.0)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise DirectoryError(
            f"cannot read the hub's member directory at {url}: {exc.__class__.__name__}"
        ) from None
    try:
        payload = documents.verify(
            response.text.strip(), keys_url_of(hub_url), DIRECTORY_MEDIA, "directory"
        )
    except documents.DocumentError as exc:
        raise DirectoryError(f"the member directory at {url} is not trusted: {exc}") from None
    return _directory_members(url, payload, hub)


def _directory_members(url: str, payload: dict[str, Any], hub: str) -> dict[str, dict[str, Any]]:
    def refuse(reason: str) -> DirectoryError:
        return DirectoryError(f"the member directory at {url} is not trusted: {reason}")

    if payload.get("type") != DIRECTORY_TYPE or payload.get("version") != 1:
        raise refuse(f"it is not a {DIRECTORY_TYPE} version 1")
    if payload.get("hub") != hub:
        raise refuse(f"it is {str(payload.get('hub'))[:64]!r}'s, not the hub {hub!r}'s")
    issued = payload.get("issued")
    if not isinstance(issued, int) or isinstance(issued, bool):
        raise refuse("its issue time is malformed")
    if issued > time.time() + MAX_FUTURE_SECONDS:
        raise refuse("it was issued in the future")
    listed = payload.get("members")
    if not isinstance(listed, list):
        raise refuse("it lists no members")
    out: dict[str, dict[str, Any]] = {}
    for item in listed:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("code"), str)
            and isinstance(item.get("keysUrl"), str)
            and item["keysUrl"].startswith(("https://", "http://"))
            and item.get("status") in (Member.ACTIVE, Member.SUSPENDED)
        ):
            raise refuse("a member in it is malformed")
        out[item["code"]] = item
    return out


def directory_entries() -> dict[str, dict[str, Any]]:
    """On a tenant, the members the hub's signed directory lists, by code (empty without a
    hub); DirectoryError when it cannot be read or trusted."""
    config = settings.PORTAL.federation
    if not (config.hub_url and config.hub):
        return {}
    where = (config.hub_url, config.hub)
    with _held_lock:
        held = _held.get(where)
        now = time.monotonic()
        # Held for a minute; an origin it does not list is unknown until it is read again.
        if held is None or now - held[0] >= DIRECTORY_SECONDS:
            held = (now, read_directory(*where))
            _held[where] = held
    return held[1]


def _directory_entry(origin: str) -> dict[str, Any] | None:
    return directory_entries().get(origin)


def origin_keys_url(origin: str) -> str | None:
    """The keys URL under which ``origin``'s record signatures are trusted here; None when
    ``origin`` is not (or no longer) a member. On the hub: its own, or an active member's
    admitted one. On a tenant: what the hub's signed directory lists (a suspended member's
    courses that the hub still offers keep verifying)."""
    if origin == _me():
        return own_keys_url()
    if is_hub():
        found = standing(origin)
        return found.keys_url if found and found.status == Member.ACTIVE else None
    try:
        entry = _directory_entry(origin)
    except DirectoryError as exc:
        # Imported here: sync imports this module. A directory that cannot be trusted stops
        # the sync (its cursor stays, the reason is reported); no record is checked against it.
        from tenant_portal.federation.sync import SyncError

        raise SyncError(f"{settings.PORTAL.federation.hub}: {exc}") from None
    return str(entry["keysUrl"]) if entry else None
