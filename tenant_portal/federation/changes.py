"""The change feed: a serialised append, and the pages ``/federation/v1/changes`` serves.

Positions must follow commit order (DESIGN §6): a reader that has seen position 10 must never
later meet a newly committed 9. A database sequence does not guarantee that (a transaction
that took 9 may commit after the one that took 10). Here every append first takes one
transaction-scoped lock (PostgreSQL's ``pg_advisory_xact_lock``; SQLite serialises writers by
itself) and then numbers the change one past the highest: the next append waits until this
transaction commits or rolls back, so numbers are handed out in commit order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Max

from tenant_portal.catalogue.models import CatalogueEntry
from tenant_portal.federation.models import Change
from tenant_portal.federation.records import record_of
from tenant_portal.federation.signing import sign

# An arbitrary constant naming the change log's lock among PostgreSQL advisory locks.
APPEND_LOCK = 0x4B4A_4645_4544  # "KJFEED"
MAX_PAGE = 500


@transaction.atomic
def append(
    *, course: uuid.UUID, origin: str, kind: str, version: int, kid: str, jws: str
) -> Change:
    """Add a change at the next position; the course's older change leaves the log."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [APPEND_LOCK])
    last = Change.objects.aggregate(last=Max("position"))["last"] or 0
    Change.objects.filter(uuid=course).delete()
    return Change.objects.create(
        position=last + 1, uuid=course, origin=origin, kind=kind, version=version, kid=kid, jws=jws
    )


def publish_local(entry: CatalogueEntry) -> Change:
    """Sign the current record of a course this instance originates and append it."""
    record = record_of(entry)
    kid, token = sign(record)
    kind = Change.TOMBSTONE if record["creativeWorkStatus"] == "Withdrawn" else Change.UPSERT
    return append(
        course=entry.uuid, origin=entry.origin, kind=kind, version=entry.version, kid=kid, jws=token
    )


@dataclass(frozen=True)
class FeedPage:
    changes: list[dict[str, Any]]
    next: int
    last: int

    @property
    def as_json(self) -> dict[str, Any]:
        return {"changes": self.changes, "next": self.next, "last": self.last}


def feed_page(after: int, limit: int) -> FeedPage:
    """Changes after ``after`` in position order, at most ``limit``; ``next`` is the cursor to
    ask with next time, ``last`` the newest position (so a reader can tell its lag)."""
    rows = list(
        Change.objects.filter(position__gt=after)
        .order_by("position")
        .values("position", "uuid", "origin", "kind", "version", "jws")[: min(limit, MAX_PAGE)]
    )
    last = Change.objects.aggregate(last=Max("position"))["last"] or 0
    changes = [
        {
            "position": row["position"],
            "id": str(row["uuid"]),
            "origin": row["origin"],
            "kind": row["kind"],
            "version": row["version"],
            "record": row["jws"],
        }
        for row in rows
    ]
    return FeedPage(changes, rows[-1]["position"] if rows else max(after, 0), last)
