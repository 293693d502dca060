"""Where a learner stands in a course, and the rules that move them on.

- Text, video, document and link lessons are done when the learner marks them done.
- A quiz is done when an attempt reaches its pass mark; attempts beyond ``max_attempts`` are
  refused. A question is right when the chosen choices are exactly the correct ones.
- The course is complete when every lesson is done; completing it issues the certificate,
  once, with a snapshot of what it certifies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.http import HttpRequest
from django.template.backends.utils import csrf_input
from django.utils import timezone
from django.utils.translation import gettext as _

from tenant_portal.catalogue.blocks import Lesson
from tenant_portal.catalogue.blocks import lessons_of as lessons_of  # a page's, for scripts
from tenant_portal.catalogue.models import CatalogueEntry, CoursePage
from tenant_portal.catalogue.rendering import RenderedLesson, rendered_course
from tenant_portal.learning.content import CourseContent, current_content, learned_here
from tenant_portal.learning.models import Certificate, Enrolment, LessonDone, QuizAttempt
from tenant_portal.learning.state import LearnerState, learner_state


class AnswerError(ValueError):
    """A quiz submission that cannot be graded; the message says which question and why."""


@dataclass(frozen=True)
class Attempt:
    """What the course page shows of a quiz attempt."""

    number: int
    score: int
    passed: bool


@dataclass
class LessonState:
    lesson: RenderedLesson
    done: bool = False
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def is_quiz(self) -> bool:
        return self.lesson.kind == "quiz"

    @property
    def attempts_left(self) -> int:
        return max(0, self.lesson.max_attempts - len(self.attempts))

    @property
    def last_attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None


def lesson_states(lessons: Iterable[RenderedLesson], state: LearnerState) -> list[LessonState]:
    """Each lesson with the learner's state: its ``done`` mark and its quiz attempts."""
    states = [LessonState(lesson) for lesson in lessons]
    done: set[str] = set()
    attempts: dict[str, list[Attempt]] = {}
    for lesson, number, score, passed in state.rows:
        if number == 0:
            done.add(lesson)
        else:
            attempts.setdefault(lesson, []).append(Attempt(number, score, passed))
    for item in states:
        item.done = item.lesson.id in done
        item.attempts = sorted(attempts.get(item.lesson.id, []), key=lambda a: a.number)
    return states


def course_context(page: CoursePage, request: HttpRequest) -> dict[str, Any]:
    """The course's content as rendered for everyone (``catalogue.rendering``) and the
    visitor's own progress in it (nothing when anonymous), kept until it changes
    (``learning.state``)."""
    course = rendered_course(page, request)
    user = request.user
    state = LearnerState(None)
    if user.is_authenticated:
        state = learner_state(user.pk, page.translation_key)
    else:
        from tenant_portal.core.page_cache import cache_for_anonymous

        cache_for_anonymous(request, keyed_on=())
    return {"course": course, **_progress(course.lessons, state, request)}


def _progress(
    lessons: Iterable[RenderedLesson], state: LearnerState, request: HttpRequest
) -> dict[str, Any]:
    """The visitor's progress through ``lessons``, as the learning template shows it."""
    enrolment = state.enrolment
    states = lesson_states(lessons, state)
    done = sum(item.done for item in states)
    return {
        "enrolment": enrolment,
        "certificate": getattr(enrolment, "certificate", None) if enrolment else None,
        "lesson_states": states,
        "lessons_done": done,
        "progress_percent": round(100 * done / len(states)) if states else 0,
        # One CSRF field for the page's many forms (a lesson's "done", a quiz), not one each.
        "csrf_field": csrf_input(request) if enrolment is not None else "",
    }


def record_context(entry: CatalogueEntry, request: HttpRequest) -> dict[str, Any] | None:
    """What the record page of a course from elsewhere shows of the course itself, when it is
    learned here (its package is held, it is not "link only"): the lessons rendered once per
    content version and language, and the visitor's own progress; None otherwise."""
    if not learned_here(entry):
        return None
    lessons = rendered_lessons(entry, request)
    if not lessons:
        return None
    user = request.user
    state = learner_state(user.pk, entry.uuid) if user.is_authenticated else LearnerState(None)
    return {**_progress(lessons, state, request), "can_enrol": not entry.retired}


def rendered_lessons(entry: CatalogueEntry, request: HttpRequest) -> tuple[RenderedLesson, ...]:
    """The lessons of ``entry``'s current content in the active language, kept rendered in the
    shared cache until the catalogue's generation moves (a package applied moves it)."""
    from django.core.cache import cache
    from django.utils.translation import get_language

    from tenant_portal.catalogue.rendering import FORMAT, TIMEOUT_SECONDS, render_lessons
    from tenant_portal.core.page_cache import request_generation

    gen = request_generation(request)
    key = f"record-render:{FORMAT}:{gen}:{entry.uuid}:{get_language()}"
    found: tuple[RenderedLesson, ...] | None = cache.get(key)
    if found is None:
        content = current_content(entry.uuid)
        language = get_language() or ""
        found = tuple(render_lessons(content, language, entry.uuid)) if content else ()
        cache.set(key, found, TIMEOUT_SECONDS)
    return found


def find_lesson(content: CourseContent, lesson_id: str) -> Lesson:
    """The lesson ``lesson_id`` as it is graded: in the course's lead language."""
    return content.lesson(lesson_id).in_language()


def grade(lesson: Lesson, answers: list[list[int]]) -> int:
    """The percentage of questions answered exactly right."""
    questions = list(lesson.value["questions"])
    right = sum(
        set(chosen) == {i for i, c in enumerate(q["choices"]) if c["correct"]}
        for q, chosen in zip(questions, answers, strict=True)
    )
    return round(100 * right / len(questions))


def parse_answers(lesson: Lesson, form: Any) -> list[list[int]]:
    """The chosen choice indexes per question, from fields ``q<n>``; refuses anything else."""
    answers = []
    for number, question in enumerate(lesson.value["questions"], start=1):
        raw = form.getlist(f"q{number}")
        if not raw:
            raise AnswerError(_("Question %(n)d has no answer.") % {"n": number})
        choices = len(question["choices"])
        single = sum(1 for c in question["choices"] if c["correct"]) == 1
        not_a_choice = AnswerError(_("Question %(n)d: an answer is not a choice.") % {"n": number})
        try:
            chosen = sorted({int(value) for value in raw})
        except ValueError:
            raise not_a_choice from None
        if any(not 0 <= i < choices for i in chosen):
            raise not_a_choice
        if single and len(chosen) > 1:
            raise AnswerError(_("Question %(n)d takes one answer.") % {"n": number})
        answers.append(chosen)
    if len(form.getlist(f"q{len(answers) + 1}")):
        raise AnswerError(_("The answers do not match this quiz's questions."))
    return answers


@transaction.atomic
def mark_done(enrolment: Enrolment, content: CourseContent, lesson: Lesson) -> Certificate | None:
    LessonDone.objects.get_or_create(enrolment=enrolment, lesson=lesson.id)
    return complete_if_finished(enrolment, content)


class AttemptRefused(PermissionError):
    pass


@transaction.atomic
def submit_quiz(
    enrolment: Enrolment, content: CourseContent, lesson: Lesson, answers: list[list[int]]
) -> QuizAttempt:
    """Record one attempt; the enrolment row is locked so two submissions cannot both take
    the last attempt."""
    Enrolment.objects.select_for_update().filter(pk=enrolment.pk).first()
    previous = list(QuizAttempt.objects.filter(enrolment=enrolment, lesson=lesson.id))
    if any(attempt.passed for attempt in previous):
        raise AttemptRefused(_("You have already passed this quiz."))
    if len(previous) >= int(lesson.value["max_attempts"]):
        raise AttemptRefused(_("You have used all your attempts at this quiz."))
    score = grade(lesson, answers)
    attempt = QuizAttempt.objects.create(
        enrolment=enrolment,
        lesson=lesson.id,
        number=len(previous) + 1,
        answers=answers,
        score=score,
        passed=score >= int(lesson.value["pass_mark"]),
    )
    if attempt.passed:
        mark_done(enrolment, content, lesson)
    return attempt


def learner_names(user: AbstractBaseUser | AnonymousUser) -> tuple[str, str]:
    name = (getattr(user, "get_full_name", lambda: "")() or "").strip()
    profile = getattr(user, "profile", None)
    local = profile.name_local if profile is not None else ""
    return name or str(getattr(user, "email", "") or user), local


def complete_if_finished(
    enrolment: Enrolment, content: CourseContent | None = None
) -> Certificate | None:
    """Complete the course and issue its certificate when every lesson of its current
    content (read when not given) is done; lessons done in an earlier version count by id."""
    locked = (
        Enrolment.objects.select_for_update().select_related("entry", "user").get(pk=enrolment.pk)
    )
    if locked.completed is not None:
        return Certificate.objects.filter(enrolment=locked).first()
    if content is None:
        content = current_content(locked.entry.uuid)
    if content is None or not content.lessons:
        return None
    lesson_ids = content.lesson_ids
    done = set(LessonDone.objects.filter(enrolment=locked).values_list("lesson", flat=True))
    if not lesson_ids <= done:
        return None
    now = timezone.now()
    locked.completed = now
    locked.save(update_fields=["completed"])
    enrolment.completed = now
    name, local = learner_names(locked.user)
    return Certificate.objects.create(
        enrolment=locked,
        learner_name=name,
        learner_name_local=local,
        course_name=locked.entry.name,
        course_iri=locked.entry.iri,
        competencies=[
            {
                "iri": c["iri"],
                "name": c["name"],
                "level": c["level"],
                "theme": c["theme"],
                "area": c["areaName"],
            }
            for c in locked.entry.competencies
        ],
        issuer=settings.PORTAL.site_name,
        provider=locked.entry.provider,
        provider_name=locked.entry.provider_name,
        issued=now,
    )
