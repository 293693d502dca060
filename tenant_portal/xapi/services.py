"""Writes: the outbox on every instance (called from the certificate signals, inside the
transaction that issues or removes the certificate), and the received statements on the hub."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone

from tenant_portal.learning.models import Certificate
from tenant_portal.xapi import statements
from tenant_portal.xapi.models import OutboxStatement, ReceivedArea, ReceivedStatement
from tenant_portal.xapi.validation import Parsed, StatementError


def _completion(certificate: Certificate) -> dict[str, Any] | None:
    """The completion statement of ``certificate``, or None when its course is not in the
    federation: internal courses stay home, and so do the own courses of an instance that
    does not publish (a country keeping its learners' records at home, say)."""
    enrolment = certificate.enrolment
    entry = enrolment.entry
    if entry.internal or (entry.is_local and not settings.PORTAL.federation.publish):
        return None
    return statements.completion(
        certificate=certificate.id,
        user_pk=enrolment.user_id,
        course_iri=certificate.course_iri or entry.iri,
        course_name=certificate.course_name or entry.name,
        competencies=certificate.competencies or entry.competencies,
        completed=certificate.issued,
    )


@transaction.atomic
def outbox_completion(*, certificate: Certificate) -> OutboxStatement | None:
    """Queue the completion of a course in the federation."""
    statement = _completion(certificate)
    if statement is None:
        return None
    row, _ = OutboxStatement.objects.get_or_create(
        statement_id=statement["id"],
        defaults={
            "certificate": certificate.id,
            "verb": statements.COMPLETED,
            "statement": statement,
            "next_attempt_at": timezone.now(),
        },
    )
    return row


@transaction.atomic
def outbox_void(*, certificate: Certificate) -> OutboxStatement | None:
    """Queue the voiding of a removed certificate's completion, if one was queued. Once the
    hub acknowledged it, the completion's row may have been pruned: its statement is then made
    again from the certificate (the same id), if its course is in the federation now."""
    original = OutboxStatement.objects.filter(
        certificate=certificate.id, verb=statements.COMPLETED
    ).first()
    completed = original.statement if original is not None else _completion(certificate)
    if completed is None:
        return None
    now = timezone.now()
    statement = statements.voiding(certificate=certificate.id, original=completed, when=now)
    row, _ = OutboxStatement.objects.get_or_create(
        statement_id=statement["id"],
        defaults={
            "certificate": certificate.id,
            "verb": statements.VOIDED,
            "statement": statement,
            "next_attempt_at": now,
        },
    )
    return row


def certificate_issued(sender: Any, instance: Certificate, created: bool, **kwargs: Any) -> None:
    if created and not kwargs.get("raw"):
        outbox_completion(certificate=instance)


def certificate_removed(sender: Any, instance: Certificate, **kwargs: Any) -> None:
    outbox_void(certificate=instance)


# --- on the hub: storing what tenants send ------------------------------------------------


class Conflict(Exception):
    """A different statement is already stored under this id (xAPI: 409)."""


class Refused(Exception):
    """The caller may not store this statement (xAPI: 403); the message says why."""


def authority(caller: str) -> dict[str, Any]:
    """Who vouches for a stored statement: the caller's federation client in the hub realm."""
    from django.conf import settings

    return {
        "objectType": "Agent",
        "account": {
            "homePage": settings.PORTAL.federation.hub_issuer,
            "name": f"federation-{caller}",
        },
    }


@transaction.atomic
def statements_store(*, parsed: list[Parsed], caller: str) -> list[str]:
    """Store each statement once, in one transaction: all or none, set-based (a few queries
    whatever the number of statements).

    A statement already stored with the same content is accepted again and stored once; with
    different content the whole request fails with :class:`Conflict` (xAPI 1.0.3: a POST with
    a conflicting statement is refused whole). The unique id decides between two requests
    racing with the same statement: the insert skips ids another request holds, and the loser
    compares with the winner's row.
    """
    ids = [p.id for p in parsed]
    if len(set(ids)) != len(ids):
        raise StatementError("id: the request holds the same statement id twice")
    for item in parsed:
        if item.platform != caller:
            raise Refused(f"context.platform is {item.platform!r}, not the caller's {caller!r}")
    _check_voids(parsed, caller)
    held = dict(
        ReceivedStatement.objects.filter(statement_id__in=ids).values_list("statement_id", "digest")
    )
    _compare(parsed, held)
    fresh = [p for p in parsed if p.id not in held]
    if fresh:
        inserted = _insert(fresh, caller, timezone.now())
        lost = [p for p in fresh if p.id not in inserted]
        if lost:  # another request stored them between our read and our insert
            won = ReceivedStatement.objects.filter(statement_id__in=[p.id for p in lost])
            _compare(lost, dict(won.values_list("statement_id", "digest")))
        ReceivedArea.objects.bulk_create(
            ReceivedArea(
                statement_id=inserted[item.id],
                platform=item.platform,
                learner=item.learner,
                area=area,
            )
            for item in fresh
            if item.id in inserted
            for area in item.areas
        )
    return [str(i) for i in ids]


def _compare(parsed: list[Parsed], held: dict[uuid.UUID, str]) -> None:
    for item in parsed:
        if item.id in held and held[item.id] != item.digest:
            raise Conflict(f"id {item.id}: a different statement is stored under this id")


def _check_voids(parsed: list[Parsed], caller: str) -> None:
    """Only the tenant that sent a statement may void it, and a void is never voided; the
    target may be stored already or come in the same request (or later: it applies then)."""
    targets = {p.voids for p in parsed if p.voids is not None}
    if not targets:
        return
    found: dict[uuid.UUID, tuple[str, uuid.UUID | None]] = {
        p.id: (p.platform, p.voids) for p in parsed if p.id in targets
    }
    stored = ReceivedStatement.objects.filter(statement_id__in=targets)
    for statement_id, platform, voids in stored.values_list("statement_id", "platform", "voids"):
        found[statement_id] = (platform, voids)
    for item in parsed:
        if item.voids is None or item.voids not in found:
            continue
        platform, voids = found[item.voids]
        if platform != caller:
            raise Refused("object.id: only the tenant that sent a statement may void it")
        if voids is not None:
            raise StatementError("object.id: a voiding statement cannot be voided")


# The columns one insert writes, in order.
_COLUMNS = (
    "statement_id",
    "platform",
    "learner",
    "verb",
    "object_id",
    "voids",
    "timestamp",
    "stored",
    "digest",
    "statement",
)


def _insert(fresh: list[Parsed], caller: str, stored: datetime) -> dict[uuid.UUID, int]:
    """Insert the statements in one statement, skipping ids another request stored first
    (``ON CONFLICT DO NOTHING``, PostgreSQL and SQLite alike); the ids inserted, with their
    rows' keys. Rows go in id order, so two requests sharing ids lock them in the same order."""
    meta = ReceivedStatement._meta
    fields = [_field(name) for name in _COLUMNS]
    rows: list[Any] = []
    for item in sorted(fresh, key=lambda p: p.id):
        statement = {
            **item.statement,
            "authority": authority(caller),
            "stored": stored.isoformat(),
            "timestamp": item.statement.get("timestamp", stored.isoformat()),
            "version": statements.VERSION,
        }
        values = (
            item.id,
            item.platform,
            item.learner,
            item.verb,
            item.object_id,
            item.voids,
            item.timestamp or stored,
            stored,
            item.digest,
            statement,
        )
        rows.extend(
            field.get_db_prep_save(value, connection)
            for field, value in zip(fields, values, strict=True)
        )
    quote = connection.ops.quote_name
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES {', '.join([one] * len(fresh))} "
        f"ON CONFLICT ({quote(fields[0].column)}) DO NOTHING "
        f"RETURNING {quote(_field('id').column)}, {quote(fields[0].column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, rows)
        returned = cursor.fetchall()
    return {fields[0].to_python(statement_id): pk for pk, statement_id in returned}


def _field(name: str) -> Field[Any, Any]:
    field = ReceivedStatement._meta.get_field(name)
    assert isinstance(field, Field)
    return field
