"""What xAPI completions keep: the outbox on every instance, the received statements on the hub.

- :class:`OutboxStatement`: a statement this instance owes the hub, written in the transaction
  that issued (or removed) the certificate, delivered by ``manage.py xapi_deliver`` with
  retries. Its id is derived from the certificate, so a retry is the same statement.
- :class:`ReceivedStatement`: on the hub, each statement stored once (unique id), with what
  the dashboard counts lifted out of it; :class:`ReceivedArea` holds one row per competency
  area of a completion so counts by area are one SQL query on every database.
"""

from __future__ import annotations

from django.db import models


class OutboxStatement(models.Model):
    PENDING = "pending"
    DELIVERED = "delivered"
    REJECTED = "rejected"
    STATES = [(PENDING, PENDING), (DELIVERED, DELIVERED), (REJECTED, REJECTED)]

    statement_id = models.UUIDField(unique=True)
    certificate = models.UUIDField(db_index=True, help_text="The certificate it reports.")
    verb = models.CharField(max_length=200)
    statement = models.JSONField()
    state = models.CharField(max_length=10, choices=STATES, default=PENDING)
    created = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(help_text="Not tried again before this time.")
    last_error = models.TextField(blank=True)
    delivered = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created", "id"]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]
        verbose_name = "outgoing xAPI statement"

    def __str__(self) -> str:
        return f"{self.statement_id} ({self.state})"


class ReceivedStatement(models.Model):
    statement_id = models.UUIDField(unique=True)
    platform = models.CharField(max_length=64, db_index=True, help_text="The sending tenant.")
    learner = models.CharField(max_length=200, help_text="<tenant>:<pseudonym>; never a name.")
    verb = models.CharField(max_length=400)
    object_id = models.CharField(max_length=400, help_text="Activity IRI or referenced id.")
    voids = models.UUIDField(null=True, blank=True, db_index=True)
    timestamp = models.DateTimeField()
    stored = models.DateTimeField(auto_now_add=True, db_index=True)
    digest = models.CharField(max_length=64, help_text="SHA-256 of the statement's content.")
    statement = models.JSONField()

    class Meta:
        ordering = ["-stored", "-id"]
        verbose_name = "received xAPI statement"

    def __str__(self) -> str:
        return f"{self.statement_id} from {self.platform}"


class ReceivedArea(models.Model):
    statement = models.ForeignKey(ReceivedStatement, on_delete=models.CASCADE, related_name="areas")
    platform = models.CharField(max_length=64)
    learner = models.CharField(max_length=200)
    area = models.CharField(max_length=400, help_text="A competency area's IRI.")

    class Meta:
        indexes = [models.Index(fields=["platform", "area"])]
