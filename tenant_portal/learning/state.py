"""A learner's state in a course, kept in the shared cache until any of their progress changes.

What a course page shows of the learner (the enrolment and its certificate, the lessons done,
the quiz attempts) costs two queries, and they were most of a signed-in course page's time
(issue 18, goal 1). It is kept per learner and course under the learner's generation; any
write to an enrolment, a lesson done, an attempt or a certificate of theirs sets a new
generation once its transaction has committed (:func:`forget`), so the next page reads the
database again and nothing read before the commit is kept where it is read.

Kept only where the cache is shared by every worker of the portal (a folder, Redis, the
database): with a per-process cache one worker would not see another's writes. Writes that
bypass model signals (``QuerySet.update``, raw SQL) must call :func:`forget` themselves; today
there are none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Value
from django.db.models.signals import post_delete, post_save

from tenant_portal.core.page_cache import generation, set_generation
from tenant_portal.learning.models import Certificate, Enrolment, LessonDone, QuizAttempt

# Part of the keys: a deployment that changes what is kept does not read an older shape.
FORMAT = 1
TIMEOUT_SECONDS = 3600

Row = tuple[str, int, int, bool]  # lesson id, attempt number (0: the lesson done), score, passed


@dataclass(frozen=True)
class LearnerState:
    """The learner's enrolment in a course (with its certificate, if issued) and its rows."""

    enrolment: Enrolment | None
    rows: tuple[Row, ...] = ()


def generation_key(user_id: int) -> str:
    return f"learner:generation:{user_id}"


def kept() -> bool:
    """Whether states are kept: only in a cache every worker shares."""
    return bool(getattr(settings, "KARMAYOGI_LEARNER_STATE_CACHE", False))


def learner_state(user_id: int, course: Any) -> LearnerState:
    """The learner's state in ``course`` (a catalogue entry's uuid), from the cache or read."""
    if not kept():
        return read_state(user_id, course)
    key = f"learner:{FORMAT}:{user_id}:{generation(generation_key(user_id))}:{course}"
    found: LearnerState | None = cache.get(key)
    if found is None:
        found = read_state(user_id, course)
        cache.set(key, found, TIMEOUT_SECONDS)
    return found


def read_state(user_id: int, course: Any) -> LearnerState:
    """Two queries: the enrolment with its certificate, then the lessons done (as number 0)
    and the quiz attempts (numbered from 1) together, however many there are."""
    enrolment = (
        Enrolment.objects.filter(user_id=user_id, entry__uuid=course)
        .select_related("certificate")
        .first()
    )
    if enrolment is None:
        return LearnerState(None)
    # order_by() drops the models' default ordering: SQLite (the local target's database)
    # refuses an ORDER BY inside the parts of a UNION.
    done_rows = (
        LessonDone.objects.filter(enrolment=enrolment)
        .order_by()
        .annotate(number=Value(0), score=Value(0), passed=Value(True))
        .values_list("lesson", "number", "score", "passed")
    )
    attempt_rows = (
        QuizAttempt.objects.filter(enrolment=enrolment)
        .order_by()
        .values_list("lesson", "number", "score", "passed")
    )
    rows = done_rows.union(attempt_rows, all=True)
    return LearnerState(enrolment, tuple((str(a), int(b), int(c), bool(d)) for a, b, c, d in rows))


def forget(user_id: int) -> None:
    """Forget every kept state of the learner once the current transaction has committed
    (at once outside one). A page that read the old rows before the commit keeps them under
    the old generation, which nobody reads again; a change rolled back forgets nothing."""
    transaction.on_commit(lambda: set_generation(generation_key(user_id)))


def _enrolment_changed(sender: Any, instance: Enrolment, **kwargs: Any) -> None:
    forget(instance.user_id)


def _progress_changed(
    sender: Any, instance: LessonDone | QuizAttempt | Certificate, **kwargs: Any
) -> None:
    # Deleted along with its enrolment, the enrolment's own signal forgets the learner.
    user_id = (
        Enrolment.objects.filter(pk=instance.enrolment_id).values_list("user_id", flat=True).first()
    )
    if user_id is not None:
        forget(user_id)


def connect() -> None:
    """Forget a learner's states on every write to their progress (from the app's ready)."""
    for name, signal in (("saved", post_save), ("deleted", post_delete)):
        signal.connect(_enrolment_changed, sender=Enrolment, dispatch_uid=f"learner-{name}")
        for model in (LessonDone, QuizAttempt, Certificate):
            signal.connect(
                _progress_changed, sender=model, dispatch_uid=f"learner-{name}-{model.__name__}"
            )
