"""A learner's way through a course: enrolment, lessons done, quiz attempts, the certificate.

Progress points at lesson block ids (see ``catalogue.blocks``), which survive edits and
translations. A certificate keeps a snapshot of what it certifies, so its verification page
shows exactly what the PDF shows even after the course changes.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from tenant_portal.catalogue.models import CatalogueEntry
from tenant_portal.competencies.models import localized


class Enrolment(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="enrolments"
    )
    entry = models.ForeignKey(CatalogueEntry, on_delete=models.PROTECT, related_name="+")
    enrolled = models.DateTimeField(auto_now_add=True)
    completed = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "entry"], name="one_enrolment")]
        indexes = [models.Index(fields=["entry", "completed"])]

    def __str__(self) -> str:
        return f"{self.user} → {self.entry}"


class LessonDone(models.Model):
    enrolment = models.ForeignKey(Enrolment, on_delete=models.CASCADE, related_name="lessons_done")
    lesson = models.CharField(max_length=64, help_text="The lesson's block id.")
    done = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["enrolment", "lesson"], name="lesson_done_once")
        ]


class QuizAttempt(models.Model):
    enrolment = models.ForeignKey(Enrolment, on_delete=models.CASCADE, related_name="attempts")
    lesson = models.CharField(max_length=64, help_text="The quiz's block id.")
    number = models.PositiveSmallIntegerField()
    answers = models.JSONField(help_text="Chosen choice indexes, one list per question.")
    score = models.PositiveSmallIntegerField(help_text="Percentage of questions answered right.")
    passed = models.BooleanField()
    submitted = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["number"]
        constraints = [
            models.UniqueConstraint(
                fields=["enrolment", "lesson", "number"], name="attempt_number_once"
            )
        ]


class Certificate(models.Model):
    """Issued once, on completion. ``id`` is the public, unguessable verification id."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    enrolment = models.OneToOneField(
        Enrolment, on_delete=models.PROTECT, related_name="certificate"
    )
    learner_name = models.CharField(max_length=300)
    learner_name_local = models.CharField(max_length=300, blank=True)
    course_name = models.JSONField(help_text="Language map, as on the day it was issued.")
    course_iri = models.URLField(max_length=400)
    competencies = models.JSONField(
        default=list,
        help_text='[{"iri", "name", "level", "theme", "area"}], names as language maps',
    )
    issuer = models.CharField(max_length=200)
    provider = models.CharField(
        max_length=300,
        blank=True,
        help_text="Who provides the course (its origin's provider, for a course from elsewhere).",
    )
    provider_name = models.JSONField(
        default=dict, blank=True, help_text="The provider's name by language, when it has one."
    )
    issued = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.learner_name}: {self.course_title}"

    @property
    def course_title(self) -> str:
        return localized(self.course_name)

    @property
    def provider_label(self) -> str:
        return localized(self.provider_name) if self.provider_name else self.provider


class CourseVersion(models.Model):
    """One version of a course's content, the one model every learning view reads.

    Filled from a local course page's published revisions (``learning.content``) and, for
    courses from other instances, from their content packages. A new version is kept only
    when the content changes; learners' progress points at lesson ids, which carry over from
    one version to the next, so it follows the course across versions and languages.
    """

    SOURCES = [("page", "a course page here"), ("package", "a content package")]

    entry = models.ForeignKey(CatalogueEntry, on_delete=models.CASCADE, related_name="+")
    number = models.PositiveIntegerField()
    source = models.CharField(max_length=16, choices=SOURCES)
    languages = models.JSONField(help_text="Language codes, the course's lead language first.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["entry", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["entry", "number"], name="course_version_once")
        ]

    def __str__(self) -> str:
        return f"{self.entry} v{self.number}"


class CourseLesson(models.Model):
    """A lesson of a course version, in every language the version has.

    ``content`` maps a language code to the lesson in that language: for every kind its
    ``title``; text ``body`` (rich text); video ``url`` and ``transcript``; document
    ``description`` and ``document`` (``title``, ``url``, ``file_extension``, ``size``, and
    the Wagtail document's ``id`` or the package file's ``sha256``);
    link ``url`` and ``description``; quiz ``pass_mark``, ``max_attempts`` and ``questions``
    (``prompt``, ``choices`` of ``text`` and ``correct``).
    """

    version = models.ForeignKey(CourseVersion, on_delete=models.CASCADE, related_name="lessons")
    lesson = models.CharField(max_length=64, help_text="The lesson's id, kept across versions.")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=16)
    module = models.JSONField(help_text="The module's title, a language map.")
    content = models.JSONField()

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "lesson"], name="course_lesson_once")
        ]

    def __str__(self) -> str:
        return f"{self.version}: {self.lesson}"


class Credential(models.Model):
    """The portable credential (Open Badges 3.0, VC-JOSE) of a certificate issued here.

    Signed once, on first download, and kept: the kid that signed it keeps its key published
    (``federation.signing.published_keys``). ``status_index`` is its bit in the status list;
    ``revoked`` sets that bit. The row outlives its certificate (deleting a certificate revokes
    its credential), so the bit stays set for as long as the list is served.
    """

    uuid = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    certificate = models.OneToOneField(
        Certificate, on_delete=models.SET_NULL, null=True, blank=True, related_name="credential"
    )
    kid = models.CharField(max_length=64, db_index=True)
    jws = models.TextField(help_text="The credential as signed (compact JWS).")
    created = models.DateTimeField(auto_now_add=True)
    revoked = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"urn:uuid:{self.uuid}{' (revoked)' if self.revoked else ''}"

    @property
    def status_index(self) -> int:
        """Its bit in the status lists: one list per 131,072 credentials, by row id."""
        return int(self.pk)


class ImportedCredential(models.Model):
    """A credential another instance issued to this officer, verified and kept for the
    passbook, with what it certifies read from its signed payload."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="imported_credentials"
    )
    credential_id = models.CharField(max_length=200, help_text="The credential's own id.")
    issuer_id = models.CharField(max_length=500)
    issuer_name = models.CharField(max_length=300)
    course_name = models.JSONField(help_text="Language map.")
    course_iri = models.CharField(max_length=400)
    competencies = models.JSONField(default=list, help_text="As Certificate.competencies.")
    issued = models.DateTimeField()
    status_list = models.CharField(max_length=500)
    status_index = models.PositiveBigIntegerField()
    jws = models.TextField()
    imported = models.DateTimeField(auto_now_add=True)
    checked = models.DateTimeField(help_text="When its status was last read.")
    revoked = models.DateTimeField(null=True, blank=True, help_text="When it was seen revoked.")

    class Meta:
        ordering = ["-issued"]
        constraints = [
            models.UniqueConstraint(fields=["user", "credential_id"], name="imported_once")
        ]

    def __str__(self) -> str:
        return f"{self.user} ← {self.issuer_name}: {self.course_title}"

    @property
    def course_title(self) -> str:
        return localized(self.course_name)
