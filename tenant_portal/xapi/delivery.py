"""Delivering the outbox to the hub's statements endpoint, in batches.

Due rows go in batches of ``KARMAYOGI_XAPI_BATCH_SIZE`` (and at most :data:`MAX_BODY` bytes),
``POST /xapi/statements`` with the JSON array of their statements, each carrying its own id,
with this instance's federation token. The ids are fixed when a row is queued, so sending a
batch again (after a timeout, a crash, a 5xx) is harmless: the hub stores each id once and
accepts the same statement again. A batch of one is ``PUT /xapi/statements?statementId=<id>``
(the single-statement resource; ``KARMAYOGI_XAPI_BATCH_SIZE=1`` sends every row so). One
delivery runs at a time (the federation sync's lock: a PostgreSQL advisory lock, a file lock on
SQLite), and no transaction is held open while the hub answers: on SQLite the hub delivering to
itself would otherwise wait on its own lock.

- 200/204: every row of the batch delivered, in one update.
- 400, 403, 409, 413: the hub refuses the whole batch for one statement (xAPI: a POST is all
  or nothing), so the batch is split in halves and each half sent again, down to the row at
  fault, which is rejected with the hub's reason and not sent again (that needs a person); the
  rest are delivered. A bad row costs about 2 log2(batch) requests.
- 404 (the URL is no hub): the batch's rows are rejected with that reason.
- anything else (the hub down, 5xx, 401 while a token is refreshed or a membership is
  suspended): the batch's rows keep the error, wait ``BACKOFF_BASE * 2**(attempts-1)`` seconds
  (at most ``BACKOFF_MAX``) and are tried again, without end: nothing is ever dropped. The run
  stops at the first such failure, so a hub that is down costs one request per run; once the
  hub answers, rows still waiting because it was unreachable are tried at once.

Delivered rows stay ``KARMAYOGI_XAPI_RETENTION_DAYS`` days (for the admin), then each run
removes them (:func:`prune`); 0 removes them as soon as the hub has them. Rejected and pending
rows are never removed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from django.conf import settings
from django.core.cache import cache
from django.db.models import F
from django.utils import timezone

from tenant_portal.federation.sync import SyncBusy, SyncError, access_token, exclusive
from tenant_portal.xapi.models import OutboxStatement
from tenant_portal.xapi.statements import VERSION

BACKOFF_BASE = 30
BACKOFF_MAX = 3600
TIMEOUT = httpx.Timeout(10.0, read=30.0)
# A refused batch is split to find the statement at fault; 404 concerns the URL, not a row.
STATEMENT_STATUSES = {400, 403, 409, 413}
REJECTED_STATUSES = {*STATEMENT_STATUSES, 404}
MAX_BODY = 1_000_000  # bytes of a batch; the hub reads at most 1 MiB
PAGE = 1000  # rows read from the outbox at a time
LOCK = "xapi-outbox"

Row = tuple[OutboxStatement, bytes]  # an outbox row and its statement as sent


class DeliveryError(Exception):
    """Delivery cannot start; the message says why."""


class NoHub(DeliveryError):
    """This instance is in no federation: its statements wait until it joins one."""


@dataclass
class DeliveryResult:
    delivered: int = 0
    rejected: int = 0
    failed: int = 0
    pruned: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def line(self) -> str:
        text = (
            f"xapi: {self.delivered} delivered, {self.rejected} rejected, {self.failed} failed, "
            f"{self.pruned} pruned"
        )
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


def _send(client: httpx.Client, url: str, batch: list[Row], token: str) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {token}",
        "X-Experience-API-Version": VERSION,
        "Content-Type": "application/json",
    }
    if len(batch) == 1:
        row, encoded = batch[0]
        params = {"statementId": str(row.statement_id)}
        return client.put(url, params=params, content=encoded, headers=headers)
    return client.post(url, content=b"[" + b",".join(e for _, e in batch) + b"]", headers=headers)


def _due(reachable: bool, limit: int) -> list[OutboxStatement]:
    rows = OutboxStatement.objects.filter(state=OutboxStatement.PENDING)
    if not reachable:
        rows = rows.filter(next_attempt_at__lte=timezone.now())
    return list(rows.order_by("next_attempt_at", "pk")[:limit])


def _packed(rows: list[OutboxStatement], size: int) -> list[list[Row]]:
    """The rows in batches of at most ``size`` statements and :data:`MAX_BODY` bytes."""
    batches: list[list[Row]] = [[]]
    length = 2
    for row in rows:
        encoded = json.dumps(row.statement, ensure_ascii=False, separators=(",", ":")).encode()
        if batches[-1] and (len(batches[-1]) >= size or length + len(encoded) + 1 > MAX_BODY):
            batches.append([])
            length = 2
        batches[-1].append((row, encoded))
        length += len(encoded) + 1
    return [batch for batch in batches if batch]


def deliver(*, now: bool = False, client: httpx.Client | None = None) -> DeliveryResult:
    """Send every due outbox row to the hub, then prune what the retention lets go; ``now``
    ignores the rows' backoff."""
    url = f"{hub_url()}/xapi/statements"
    try:
        with exclusive(LOCK):
            if client is not None:
                result = _deliver_due(client, url, now)
            else:
                with httpx.Client(timeout=TIMEOUT) as http:
                    result = _deliver_due(http, url, now)
            result.pruned = prune()
            return result
    except SyncBusy:
        raise DeliveryError("another delivery of the outbox is running; this one stops") from None


def _deliver_due(http: httpx.Client, url: str, now: bool) -> DeliveryResult:
    result = DeliveryResult()
    secret = settings.PORTAL.federation.client_secret
    size = settings.PORTAL.xapi_batch_size
    seen: set[int] = set()
    reachable = now
    # Every row sent leaves the pending rows (delivered, rejected) or ends the run (failed),
    # so each round reads the next due rows; ``seen`` only guards against a row coming back.
    while rows := [r for r in _due(reachable, max(size, PAGE)) if r.pk not in seen]:
        seen.update(r.pk for r in rows)
        for batch in _packed(rows, size):
            if not _deliver_batch(http, url, batch, secret, result):
                return result
            reachable = True
    return result


def _deliver_batch(
    http: httpx.Client, url: str, batch: list[Row], secret: str, result: DeliveryResult
) -> bool:
    """Send ``batch`` and record the outcome on its rows; False when the hub failed (the run
    stops), True when every row was delivered or rejected."""
    token = ""
    try:
        token = access_token()
        response = _send(http, url, batch, token)
    except SyncError as exc:
        error = _scrub(str(exc), secret)
    except httpx.HTTPError as exc:
        error = _scrub(f"cannot reach the hub: {exc.__class__.__name__}", token, secret)
    else:
        if response.status_code in (200, 204):
            _delivered([row for row, _ in batch])
            result.delivered += len(batch)
            return True
        error = _scrub(_reason(response), token, secret)
        if response.status_code in STATEMENT_STATUSES and len(batch) > 1:
            # One statement spoils the batch: find it by halves; the others go.
            half = len(batch) // 2
            return all(
                _deliver_batch(http, url, part, secret, result)
                for part in (batch[:half], batch[half:])
            )
        if response.status_code in REJECTED_STATUSES:
            _rejected([row for row, _ in batch], error)
            result.rejected += len(batch)
            result.errors.append(error)
            return True
        if response.status_code == 401:
            # The cached token may have been revoked or expired early: ask for a new one.
            cache.delete(f"federation:token:{settings.PORTAL.federation.client_id}")
    _failed([row for row, _ in batch], error)
    result.failed += len(batch)
    result.errors.append(error)
    return False


def _delivered(rows: list[OutboxStatement]) -> None:
    OutboxStatement.objects.filter(pk__in=[r.pk for r in rows]).update(
        state=OutboxStatement.DELIVERED,
        delivered=timezone.now(),
        attempts=F("attempts") + 1,
        last_error="",
    )


def _rejected(rows: list[OutboxStatement], error: str) -> None:
    OutboxStatement.objects.filter(pk__in=[r.pk for r in rows]).update(
        state=OutboxStatement.REJECTED, attempts=F("attempts") + 1, last_error=error
    )


def _failed(rows: list[OutboxStatement], error: str) -> None:
    """The rows stay pending with the error; each waits out its own backoff."""
    now = timezone.now()
    for row in rows:
        row.attempts += 1
        row.last_error = error
        row.next_attempt_at = now + backoff(row.attempts)
    OutboxStatement.objects.bulk_update(rows, ["attempts", "last_error", "next_attempt_at"])


def prune(*, days: int | None = None) -> int:
    """Remove the rows the hub acknowledged more than ``days`` ago (default:
    ``KARMAYOGI_XAPI_RETENTION_DAYS``; 0: all of them); how many went."""
    keep = settings.PORTAL.xapi_retention_days if days is None else days
    cutoff = timezone.now() - timedelta(days=keep)
    gone = OutboxStatement.objects.filter(state=OutboxStatement.DELIVERED, delivered__lte=cutoff)
    count, _ = gone.delete()
    return count


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
