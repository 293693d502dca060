"""What an instance keeps to federate: its signing keys, its change log, and its peers' state.

- :class:`SigningKey`: the instance signs the records it originates (JWS, ES256). A rotated key
  stays published while any change signed with it is still served.
- :class:`Change`: the change feed. Positions are handed out by a serialised append
  (``federation.changes.append``), so they follow commit order; only each course's latest
  change is kept (a record is a full snapshot), so the log is as long as the catalogue.
- :class:`PeerState`: per peer this instance pulls, the cursor and what the last sync did.
  The cursor is written in the same transaction as the records it covers.
- :class:`Quarantined`: records refused by a sync, with the reason, for the admin to see.
- :class:`Member`, :class:`SeenNonce` (the hub): who belongs to the federation, and the join
  requests already admitted.
"""

from __future__ import annotations

from django.db import models


class SigningKey(models.Model):
    kid = models.CharField(max_length=64, unique=True)
    private_jwk = models.JSONField(help_text="Secret. Never shown, never logged.")
    public_jwk = models.JSONField()
    created = models.DateTimeField(auto_now_add=True)
    retired = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.kid}{' (retired)' if self.retired else ''}"


class Change(models.Model):
    UPSERT = "upsert"
    TOMBSTONE = "tombstone"

    position = models.BigIntegerField(unique=True)
    uuid = models.UUIDField(unique=True, help_text="The course; only its latest change is kept.")
    origin = models.CharField(max_length=64)
    kind = models.CharField(max_length=10, choices=[(UPSERT, UPSERT), (TOMBSTONE, TOMBSTONE)])
    version = models.PositiveIntegerField()
    kid = models.CharField(max_length=64, db_index=True)
    jws = models.TextField(help_text="The record as its origin signed it.")
    recorded = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position"]

    def __str__(self) -> str:
        return f"#{self.position} {self.kind} {self.uuid} v{self.version}"


class PeerState(models.Model):
    peer = models.CharField(max_length=64, unique=True)
    cursor = models.BigIntegerField(default=0)
    peer_position = models.BigIntegerField(default=0, help_text="The peer's newest position seen.")
    last_success = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    applied = models.PositiveIntegerField(default=0, help_text="Records applied by the last sync.")

    def __str__(self) -> str:
        return f"{self.peer} @ {self.cursor}"

    @property
    def lag(self) -> int:
        return max(0, self.peer_position - self.cursor)


class Quarantined(models.Model):
    peer = models.CharField(max_length=64)
    position = models.BigIntegerField()
    uuid = models.CharField(max_length=64, blank=True)
    reason = models.TextField()
    payload = models.TextField(blank=True, help_text="The first 64 KB of what arrived.")
    received = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received"]
        verbose_name_plural = "quarantined records"
        constraints = [
            models.UniqueConstraint(fields=["peer", "position"], name="quarantined_once")
        ]

    def __str__(self) -> str:
        return f"{self.peer}#{self.position}: {self.reason}"


class Member(models.Model):
    """A member of the hub's federation: declared by the deployment's spec folder (``spec``)
    or admitted from a signed join request (``admitted``). The hub checks every feed and xAPI
    caller against these rows and trusts a member's record signatures only under its
    ``keys_url``; a changed keys URL means removal and a new admission."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    SPEC = "spec"
    ADMITTED = "admitted"

    code = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    tenant_type = models.CharField(max_length=16, default="state")
    portal_url = models.CharField(max_length=500)
    keys_url = models.CharField(max_length=500, help_text="The admitted keys URL.")
    broker_redirect_uri = models.CharField(max_length=500, blank=True)
    publish = models.BooleanField(default=True, help_text="The hub pulls its courses.")
    status = models.CharField(
        max_length=10, choices=[(ACTIVE, ACTIVE), (SUSPENDED, SUSPENDED)], default=ACTIVE
    )
    courses_withdrawn = models.BooleanField(
        default=False, help_text="Its courses were withdrawn from the hub at suspension."
    )
    source = models.CharField(max_length=10, choices=[(SPEC, SPEC), (ADMITTED, ADMITTED)])
    admitted_by = models.CharField(max_length=200)
    admitted_at = models.DateTimeField(auto_now_add=True)
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} ({self.status})"


class SeenNonce(models.Model):
    """The nonce of every join request admitted: a request is admitted once."""

    nonce = models.CharField(max_length=128, unique=True)
    code = models.CharField(max_length=64)
    seen_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.code}: {self.nonce[:8]}…"


class HeldPackage(models.Model):
    """The content package of a course from another instance, as its origin signed it, once
    every check passed and every file it lists is held (:class:`HeldFile`)."""

    entry = models.OneToOneField(
        "catalogue.CatalogueEntry", on_delete=models.CASCADE, related_name="+"
    )
    version = models.PositiveIntegerField()
    jws = models.TextField(help_text="The package as its origin signed it.")
    package = models.JSONField(help_text="Its verified payload.")
    received = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.entry_id} v{self.version}"


class HeldFile(models.Model):
    """A file some held package lists, kept here under its SHA-256 after its bytes matched."""

    sha256 = models.CharField(max_length=64, unique=True)
    media_type = models.CharField(max_length=100)
    size = models.BigIntegerField()
    file = models.FileField(upload_to="federation/files/", max_length=200)
    received = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.sha256


class QuarantinedPackage(models.Model):
    """A content package refused by a pull, with the reason; nothing of it was applied."""

    peer = models.CharField(max_length=64)
    uuid = models.UUIDField()
    version = models.PositiveIntegerField()
    reason = models.TextField()
    payload = models.TextField(blank=True, help_text="The first 64 KB of what arrived.")
    received = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received"]
        verbose_name_plural = "quarantined packages"
        constraints = [
            models.UniqueConstraint(
                fields=["peer", "uuid", "version"], name="quarantined_package_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.peer} {self.uuid} v{self.version}: {self.reason}"
