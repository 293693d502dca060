"""Delivering the outbox to the hub's statements endpoint.

Each due row is sent on its own, ``PUT /xapi/statements?statementId=<id>``, with this
instance's federation token: the statement id is in the URL, so sending twice is harmless, and
the hub's answer concerns exactly one row (a conflict or a refusal stops that statement only,
where one bad statement would refuse a whole POSTed batch). One delivery runs at a time (the
federation sync's lock: a PostgreSQL advisory lock, a file lock on SQLite), and no transaction
is held open while the hub answers: on SQLite the hub delivering to itself would otherwise
wait on its own lock.

- 200/204: delivered.
- 409 (the hub holds a different statement under this id), 400, 403, 404, 413: rejected, kept
  with the hub's reason and not sent again; that needs a person.
- anything else (the hub down, 5xx, 401 while a token is refreshed): the error is kept, the row
  waits ``BACKOFF_BASE * 2**(attempts-1)`` seconds (at most ``BACKOFF_MAX``) and is tried again,
  without end: nothing is ever dropped. The run stops at the first such failure, so a hub that
  is down costs one request per run; once the hub answers, rows still waiting because it was
  unreachable are tried at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from tenant_portal.federation.sync import SyncBusy, SyncError, access_token, exclusive
from tenant_portal.xapi.models import OutboxStatement
from tenant_portal.xapi.statements import VERSION

BACKOFF_BASE = 30
BACKOFF_MAX = 3600
TIMEOUT = httpx.Timeout(10.0, read=30.0)
REJECTED_STATUSES = {400, 403, 404, 409, 413}
BATCH = 200
LOCK = "xapi-outbox"


class DeliveryError(Exception):
    """Delivery cannot start; the message says why."""


class NoHub(DeliveryError):
    """This instance is in no federation: its statements wait until it joins one."""


@dataclass
class DeliveryResult:
    delivered: int = 0
    rejected: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def line(self) -> str:
        text = f"xapi: {self.delivered} delivered, {self.rejected} rejected, {self.failed} failed"
        return text + (f" ({self.errors[-1]})" if self.errors else "")


def hub_url() -> str:
    """The hub portal's base URL: ``hubUrl`` in the federation settings; the hub itself uses
    its own URL, and an older rendering may still name the hub among the peers."""
    config = settings.PORTAL.federation
    if config.hub_url:
        return config.hub_url
    if config.is_hub:
        return settings.PORTAL.portal_url
    for peer in config.peers:
        if peer.code == config.hub:
            return peer.url
    raise NoHub("no hub to deliver to: the federation settings name no hubUrl")


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(0, attempts - 1)))


def _scrub(text: str, *secrets: str) -> str:
    """One line, at most 300 characters, with no token or secret in it."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return " ".join(text.split())[:300]


def _reason(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
        reason = str(body.get("error", "")) if isinstance(body, dict) else ""
    except ValueError:
        reason = ""
    return f"the hub answered {response.status_code}" + (f": {reason}" if reason else "")


def _send(client: httpx.Client, url: str, row: OutboxStatement, token: str) -> httpx.Response:
    return client.put(
        url,
        params={"statementId": str(row.statement_id)},
        content=json.dumps(row.statement, ensure_ascii=False).encode(),
        headers={
            "Authorization": f"Bearer {token}",
            "X-Experience-API-Version": VERSION,
            "Content-Type": "application/json",
        },
    )


def _candidates(reachable: bool, seen: set[int]) -> list[int]:
    rows = OutboxStatement.objects.filter(state=OutboxStatement.PENDING).exclude(pk__in=seen)
    if not reachable:
        rows = rows.filter(next_attempt_at__lte=timezone.now())
    return list(rows.order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:BATCH])


def deliver(*, now: bool = False, client: httpx.Client | None = None) -> DeliveryResult:
    """Send every due outbox row to the hub; ``now`` ignores the rows' backoff."""
    url = f"{hub_url()}/xapi/statements"
    try:
        with exclusive(LOCK):
            if client is not None:
                return _deliver_due(client, url, now)
            with httpx.Client(timeout=TIMEOUT) as http:
                return _deliver_due(http, url, now)
    except SyncBusy:
        raise DeliveryError("another delivery of the outbox is running; this one stops") from None


def _deliver_due(http: httpx.Client, url: str, now: bool) -> DeliveryResult:
    result = DeliveryResult()
    secret = settings.PORTAL.federation.client_secret
    seen: set[int] = set()
    reachable = now
    while batch := _candidates(reachable, seen):
        for row in OutboxStatement.objects.filter(pk__in=batch).order_by("next_attempt_at", "pk"):
            seen.add(row.pk)
            outcome, error = _deliver_one(http, url, row, secret)
            if outcome == OutboxStatement.DELIVERED:
                result.delivered += 1
                reachable = True
            elif outcome == OutboxStatement.REJECTED:
                result.rejected += 1
                result.errors.append(error)
                reachable = True
            else:
                result.failed += 1
                result.errors.append(error)
                return result
    return result


def _deliver_one(
    http: httpx.Client, url: str, row: OutboxStatement, secret: str
) -> tuple[str, str]:
    """Send one row and record the outcome on it: its new state and the error, if any."""
    row.attempts += 1
    token = ""
    try:
        token = access_token()
        response = _send(http, url, row, token)
    except SyncError as exc:
        error = _scrub(str(exc), secret)
    except httpx.HTTPError as exc:
        error = _scrub(f"cannot reach the hub: {exc.__class__.__name__}", token, secret)
    else:
        if response.status_code in (200, 204):
            row.state = OutboxStatement.DELIVERED
            row.delivered = timezone.now()
            row.last_error = ""
            row.save(update_fields=["state", "delivered", "attempts", "last_error"])
            return row.state, ""
        error = _scrub(_reason(response), token, secret)
        if response.status_code in REJECTED_STATUSES:
            row.state = OutboxStatement.REJECTED
            row.last_error = error
            row.save(update_fields=["state", "attempts", "last_error"])
            return row.state, error
        if response.status_code == 401:
            # The cached token may have been revoked or expired early: ask for a new one.
            cache.delete(f"federation:token:{settings.PORTAL.federation.client_id}")
    row.last_error = error
    row.next_attempt_at = timezone.now() + backoff(row.attempts)
    row.save(update_fields=["attempts", "last_error", "next_attempt_at"])
    return row.state, error


def outbox_status() -> dict[str, Any]:
    """How many rows wait, were delivered or were rejected, and the oldest waiting one."""
    rows = OutboxStatement.objects
    waiting = rows.filter(state=OutboxStatement.PENDING).order_by("created").first()
    return {
        "pending": rows.filter(state=OutboxStatement.PENDING).count(),
        "delivered": rows.filter(state=OutboxStatement.DELIVERED).count(),
        "rejected": rows.filter(state=OutboxStatement.REJECTED).count(),
        "oldest_pending": waiting.created.isoformat() if waiting else None,
        "last_error": waiting.last_error or None if waiting else None,
    }
