"""Learning reads one course-content model (issue 17, item 1): versions of a course's lessons in
every language, filled from a course page's published revisions, and enough on their own for
enrolment, lessons, quizzes, the certificate and the passbook."""

from __future__ import annotations

import importlib
import json
import uuid
from typing import Any

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tenant_portal.catalogue.models import CatalogueEntry, CoursePage
from tenant_portal.learning.content import (
    CourseContent,
    LessonContent,
    current_content,
    current_version,
    store,
)
from tenant_portal.learning.models import Certificate, CourseVersion, Enrolment, LessonDone
from tests.tenant_portal.learning import add_course, make_user, prepare_site
from tests.tenant_portal.test_learning import finish, lesson_ids

pytestmark = pytest.mark.django_db


@pytest.fixture
def course() -> CoursePage:
    return add_course(prepare_site(), "notes")


def signed_in(username: str) -> Client:
    client = Client()
    client.force_login(make_user(username))
    return client


def publish_with(page: CoursePage, change: Any) -> None:
    """Publish a new revision of ``page`` whose raw ``modules`` data ``change`` edited."""
    page = CoursePage.objects.get(pk=page.pk)
    data = json.loads(json.dumps(list(page.modules.raw_data)))
    change(data)
    page.modules = data
    page.save_revision().publish()


def test_publishing_keeps_the_content_in_every_language_and_a_version_only_on_change(
    course: CoursePage,
) -> None:
    content = current_content(course.translation_key)
    assert content is not None and content.languages == ("en", "hi")
    assert [lesson.id for lesson in content.lessons] == list(lesson_ids(course).values())
    text, _link, quiz = content.lessons
    assert text.value("hi")["title"] == "टिप्पणी क्या है"
    assert text.module == {"en": "Basics", "hi": "मूल बातें"}
    assert [c["correct"] for c in quiz.value("hi")["questions"][1]["choices"]] == [
        True,
        True,
        False,
    ]
    number = CourseVersion.objects.get(entry__uuid=course.translation_key, number=2).number
    CoursePage.objects.get(pk=course.pk).save_revision().publish()  # nothing changed
    assert current_version(course.translation_key).number == number  # type: ignore[union-attr]

    # The Hindi page shows the quiz in Hindi; the learner's answers are graded the same.
    hindi = signed_in("hindi")
    hindi.post(reverse("enrol", args=[course.translation_key]))
    page = hindi.get("/courses/notes/", headers={"accept-language": "hi"}).content.decode()
    assert "संक्षिप्त" in page and "brief" not in page
    finish(hindi, course)
    assert Certificate.objects.count() == 1


def test_a_new_version_keeps_each_learners_progress_by_lesson_id(course: CoursePage) -> None:
    learner = signed_in("steady")
    key, ids = course.translation_key, lesson_ids(course)
    learner.post(reverse("enrol", args=[key]))
    learner.post(reverse("lesson_done", args=[key, ids["text"]]))

    def add_a_lesson(data: list[dict[str, Any]]) -> None:
        lessons = data[0]["value"]["lessons"]
        lessons[0]["value"]["title"] = "What a note is, and is not"
        lessons.append(
            {"type": "text", "value": {"title": "Registers", "body": "<p>Keep one.</p>"}, "id": "r"}
        )

    publish_with(course, add_a_lesson)
    version = current_version(key)
    assert version is not None and version.number == 3
    assert [row.lesson for row in version.lessons.all()] == [
        ids["text"],
        ids["link"],
        "r",
        ids["quiz"],
    ]
    page = learner.get("/courses/notes/").content.decode()
    assert "1 of 4 lessons done." in page and "What a note is, and is not" in page
    # The new lesson is in English only: the Hindi page shows it in English.
    hindi = learner.get("/courses/notes/", headers={"accept-language": "hi"}).content.decode()
    assert "Registers" in hindi and "टिप्पणी क्या है" in hindi

    learner.post(reverse("lesson_done", args=[key, ids["link"]]))
    learner.post(reverse("quiz", args=[key, ids["quiz"]]), {"q1": "0", "q2": ["0", "1"]})
    assert Enrolment.objects.get().completed is None  # the new lesson is still to do
    learner.post(reverse("lesson_done", args=[key, "r"]))
    assert Enrolment.objects.get().completed is not None

    # A lesson dropped from the course no longer holds anyone back.
    other = signed_in("later")
    other.post(reverse("enrol", args=[key]))
    publish_with(course, lambda data: data[0]["value"]["lessons"].pop())
    for lesson in (ids["text"], ids["link"]):
        other.post(reverse("lesson_done", args=[key, lesson]))
    assert other.post(reverse("lesson_done", args=[key, "r"])).status_code == 404
    other.post(reverse("quiz", args=[key, ids["quiz"]]), {"q1": "0", "q2": ["0", "1"]})
    assert Enrolment.objects.get(user__username="later").completed is not None


def test_a_course_without_a_page_is_learned_from_its_content_alone() -> None:
    """A catalogue row with content and no page (what a federated course will be)."""
    prepare_site()
    course = uuid.uuid4()
    entry = CatalogueEntry.objects.create(
        uuid=course,
        iri=f"https://learn.bihar.example/courses/{course}",
        origin="bihar",
        origin_name="Bihar Karmayogi",
        provider="Bihar Institute of Public Administration",
        name={"en": "Flood relief logistics"},
        languages=["en"],
        competencies=[
            {
                "iri": "https://kcm.example/functional/disaster/relief",
                "level": 2,
                "name": {"en": "Relief logistics"},
                "theme": {"en": "Disaster management"},
                "area": "functional",
                "areaName": {"en": "Functional"},
            }
        ],
        url=f"/courses/{course}/",
        modified=timezone.now(),
    )
    quiz = {
        "title": "Check",
        "pass_mark": 100,
        "max_attempts": 1,
        "questions": [
            {
                "prompt": "First?",
                "choices": [{"text": "water", "correct": True}, {"text": "tv", "correct": False}],
            }
        ],
    }
    store(
        entry,
        CourseContent(
            ("en",),
            (
                LessonContent(
                    "t1", "text", {"en": "Before"}, {"en": {"title": "Plan", "body": ""}}
                ),
                LessonContent("q1", "quiz", {"en": "After"}, {"en": quiz}),
            ),
        ),
        "package",
    )
    learner = signed_in("flood")
    enrolled = learner.post(reverse("enrol", args=[course]))
    assert enrolled.status_code == 302 and enrolled["Location"] == f"/courses/{course}/#lessons"
    assert learner.post(reverse("quiz", args=[course, "t1"])).status_code == 404
    assert learner.post(reverse("lesson_done", args=[course, "q1"])).status_code == 400
    learner.post(reverse("lesson_done", args=[course, "t1"]))
    assert learner.post(reverse("quiz", args=[course, "q1"]), {"q1": "0"}).status_code == 302
    certificate = Certificate.objects.get()
    assert certificate.course_iri == entry.iri
    assert certificate.course_title == "Flood relief logistics"
    assert "Relief logistics" in learner.get("/passbook/").content.decode()


def test_the_data_migration_carries_existing_progress_over(course: CoursePage) -> None:
    learner = signed_in("before")
    key, ids = course.translation_key, lesson_ids(course)
    learner.post(reverse("enrol", args=[key]))
    learner.post(reverse("lesson_done", args=[key, ids["text"]]))
    learner.post(reverse("lesson_done", args=[key, ids["link"]]))
    CourseVersion.objects.all().delete()  # as before the content model
    assert learner.post(reverse("lesson_done", args=[key, ids["link"]])).status_code == 404

    migration = importlib.import_module(
        "tenant_portal.learning.migrations.0003_fill_course_content"
    )
    migration.fill_content(apps, None)
    migration.fill_content(apps, None)  # a second run changes nothing
    version = CourseVersion.objects.get()
    assert version.number == 1 and version.languages == ["en", "hi"]
    assert [row.lesson for row in version.lessons.all()] == list(ids.values())
    assert "2 of 3 lessons done." in learner.get("/courses/notes/").content.decode()
    learner.post(reverse("quiz", args=[key, ids["quiz"]]), {"q1": "0", "q2": ["0", "1"]})
    assert Enrolment.objects.get().completed is not None
    assert LessonDone.objects.count() == 3
