"""Writes: the outbox on every instance (called from the certificate signals, inside the
transaction that issues or removes the certificate), and the received statements on the hub."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from tenant_portal.learning.models import Certificate
from tenant_portal.xapi import statements
from tenant_portal.xapi.models import OutboxStatement, ReceivedArea, ReceivedStatement
from tenant_portal.xapi.validation import Parsed, StatementError


@transaction.atomic
def outbox_completion(*, certificate: Certificate) -> OutboxStatement | None:
    """Queue the completion of a course in the federation. Internal courses stay home, and so
    do the own courses of an instance that does not publish (a country keeping its learners'
    records at home, say): they are not in the federation."""
    enrolment = certificate.enrolment
    entry = enrolment.entry
    if entry.internal or (entry.is_local and not settings.PORTAL.federation.publish):
        return None
    statement = statements.completion(
        certificate=certificate.id,
        user_pk=enrolment.user_id,
        course_iri=certificate.course_iri or entry.iri,
        course_name=certificate.course_name or entry.name,
        competencies=certificate.competencies or entry.competencies,
        completed=certificate.issued,
    )
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
def outbox_void(*, certificate: Any) -> OutboxStatement | None:
    """Queue the voiding of a removed certificate's completion, if one was queued."""
    original = OutboxStatement.objects.filter(
        certificate=certificate, verb=statements.COMPLETED
    ).first()
    if original is None:
        return None
    now = timezone.now()
    statement = statements.voiding(certificate=certificate, original=original.statement, when=now)
    row, _ = OutboxStatement.objects.get_or_create(
        statement_id=statement["id"],
        defaults={
            "certificate": certificate,
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
    outbox_void(certificate=instance.id)


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
    """Store each statement once, in one transaction: all or none.

    A statement already stored with the same content is accepted again and stored once; with
    different content the whole request fails with :class:`Conflict`. The unique id decides
    between two requests racing with the same statement: the loser finds the winner's row.
    """
    ids = [p.id for p in parsed]
    if len(set(ids)) != len(ids):
        raise StatementError("id: the request holds the same statement id twice")
    held = {r.statement_id: r for r in ReceivedStatement.objects.filter(statement_id__in=ids)}
    stored = timezone.now()
    for item in parsed:
        if item.platform != caller:
            raise Refused(f"context.platform is {item.platform!r}, not the caller's {caller!r}")
        if item.voids is not None:
            target = (
                held.get(item.voids)
                or ReceivedStatement.objects.filter(statement_id=item.voids).first()
            )
            if target is not None and target.platform != caller:
                raise Refused("object.id: only the tenant that sent a statement may void it")
            if target is not None and target.voids is not None:
                raise StatementError("object.id: a voiding statement cannot be voided")
        existing = held.get(item.id)
        if existing is None:
            existing = _insert(item, caller, stored)
        if existing is not None and existing.digest != item.digest:
            raise Conflict(f"id {item.id}: a different statement is stored under this id")
    return [str(i) for i in ids]


def _insert(item: Parsed, caller: str, stored: Any) -> ReceivedStatement | None:
    """Insert one statement; the row another request stored first, if it won the race."""
    statement = {
        **item.statement,
        "authority": authority(caller),
        "stored": stored.isoformat(),
        "timestamp": item.statement.get("timestamp", stored.isoformat()),
        "version": statements.VERSION,
    }
    try:
        with transaction.atomic():
            row = ReceivedStatement.objects.create(
                statement_id=item.id,
                platform=item.platform,
                learner=item.learner,
                verb=item.verb,
                object_id=item.object_id,
                voids=item.voids,
                timestamp=item.timestamp or stored,
                digest=item.digest,
                statement=statement,
            )
    except IntegrityError:
        return ReceivedStatement.objects.get(statement_id=item.id)
    ReceivedArea.objects.bulk_create(
        ReceivedArea(statement=row, platform=row.platform, learner=row.learner, area=area)
        for area in item.areas
    )
    return None
