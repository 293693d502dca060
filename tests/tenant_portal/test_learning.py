"""Courses, the catalogue table and learning, through the portal's own views on PostgreSQL."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader
from wagtail.documents.models import Document
from wagtail.models import Locale

from tenant_portal.catalogue.models import CatalogueEntry, CatalogueIndexPage, CoursePage
from tenant_portal.learning.models import Certificate, Enrolment, LessonDone, QuizAttempt
from tenant_portal.learning.progress import lessons_of
from tenant_portal.learning.seed import SeedError, read_seed, seed
from tests.tenant_portal.conftest import set_portal
from tests.tenant_portal.learning import add_course, finish, lesson_ids, make_user, prepare_site

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalogue() -> CatalogueIndexPage:
    return prepare_site()


@pytest.fixture
def course(catalogue: CatalogueIndexPage) -> CoursePage:
    return add_course(catalogue, "notes")


def signed_in(username: str, **kwargs: Any) -> Client:
    client = Client()
    client.force_login(make_user(username, **kwargs))
    return client


# --- the catalogue table ---------------------------------------------------------------------


def test_publishing_a_course_writes_one_catalogue_row_with_its_translations(
    course: CoursePage,
) -> None:
    entry = CatalogueEntry.objects.get()
    assert entry.uuid == course.translation_key
    assert entry.iri == f"https://learn.example.org/courses/{course.translation_key}"
    assert entry.languages == ["en", "hi"]
    assert entry.name == {"en": "Noting and drafting notes", "hi": "टिप्पण और प्रारूपण notes"}
    assert entry.provider == "Institute of Secretariat Training"
    assert entry.url == "/courses/notes/"
    assert {c["level"] for c in entry.competencies} == {2, 3}

    course.unpublish()
    entry.refresh_from_db()
    assert entry.retired
    assert Client().get("/courses/").content.count(b"course-card") == 0


def test_a_translation_keeps_the_lesson_ids_so_progress_follows_the_language(
    course: CoursePage,
) -> None:
    hindi = course.get_translation(Locale.objects.get(language_code="hi"))
    assert [lesson.id for lesson in lessons_of(hindi.specific.modules)] == [
        lesson.id for lesson in lessons_of(course.modules)
    ]
    page = Client(headers={"accept-language": "hi"}).get("/courses/notes/")
    assert "टिप्पण और प्रारूपण notes" in page.content.decode()


def test_the_catalogue_filters_searches_and_pages(catalogue: CatalogueIndexPage) -> None:
    for n in range(22):
        add_course(catalogue, f"filler-{n}")
    add_course(
        catalogue,
        "budget",
        title={"en": "Budgeting basics", "hi": "बजट"},
        competencies=[
            {
                "area": "functional",
                "theme": "financial-management",
                "subTheme": "budgeting",
                "level": 1,
            }
        ],
        durationMinutes=30,
    )
    add_course(
        catalogue,
        "empathy",
        title={"en": "Empathy at the counter"},
        summary={"en": "Serve citizens with care."},
        competencies=[
            {
                "area": "behavioural",
                "theme": "working-with-others",
                "subTheme": "empathy",
                "level": 2,
            }
        ],
        durationMinutes=240,
    )
    client = signed_in("reader")

    def titles(query: str) -> set[str]:
        html = client.get(f"/courses/?{query}").content.decode()
        return {t for t in ("Budgeting basics", "Empathy at the counter") if t in html}

    assert titles("area=behavioural") == {"Empathy at the counter"}
    assert titles("theme=financial-management") == {"Budgeting basics"}
    assert titles("duration=short") == {"Budgeting basics"}
    assert titles("duration=long") == {"Empathy at the counter"}
    assert titles("language=hi&area=functional") == {"Budgeting basics"}
    assert titles("language=ur") == set()
    assert titles("q=citizens care") == {"Empathy at the counter"}
    assert titles("q=बजट") == {"Budgeting basics"}
    assert "24 courses" in client.get("/courses/").content.decode()
    second = client.get("/courses/?page=2").content.decode()
    assert second.count('class="course-card"') == 4
    # Nonsense is ignored, not an error.
    assert client.get("/courses/?duration=forever&page=x&area=%00").status_code == 200


def test_a_federated_card_names_the_instance_it_comes_from_once(
    catalogue: CatalogueIndexPage, settings: Any
) -> None:
    local = CatalogueEntry.objects.get(page=add_course(catalogue, "local"))
    for title, provider in (
        ("Flood relief logistics", "Bihar Institute of Public Administration"),
        ("Bihar's land records", "Bihar Karmayogi"),
    ):
        course = uuid.uuid4()
        CatalogueEntry.objects.create(
            uuid=course,
            iri=f"https://learn.bihar.example/courses/{course}",
            origin="bihar",
            origin_name=provider,  # a record names its provider only
            provider=provider,
            name={"en": title},
            languages=["en"],
            duration_minutes=45,
            competencies=local.competencies,
            url=f"https://learn.bihar.example/courses/{course}/",
            modified=timezone.now(),
        )
    reader = signed_in("reader")
    # The federation's settings name every instance: the origin follows its provider...
    set_portal(settings, federation={"names": {"bihar": "Bihar Karmayogi"}})
    html = reader.get("/courses/").content.decode()
    assert "Bihar Institute of Public Administration (Bihar Karmayogi)" in html
    # ... unless the instance is the provider; and a local course names no origin.
    assert "Bihar Karmayogi (Bihar Karmayogi)" not in html
    assert "<dd>Bihar Karmayogi</dd>" in html
    # Without the names, the provider is not repeated in brackets.
    set_portal(settings, federation={})
    cache.clear()  # the listing is kept rendered until the catalogue changes
    html = reader.get("/courses/").content.decode()
    assert "(Bihar Institute of Public Administration)" not in html
    assert "<dd>Bihar Institute of Public Administration</dd>" in html


def test_anonymous_pages_are_cached_until_a_course_is_published(
    catalogue: CatalogueIndexPage, course: CoursePage, django_capture_on_commit_callbacks: Any
) -> None:
    cache.clear()  # the test process's cache outlives each test's rolled-back database
    visitor = Client()
    assert visitor.get("/courses/").get("X-Page-Cache") == "miss"
    cached = visitor.get("/courses/")
    assert cached.get("X-Page-Cache") == "hit" and b"Noting and drafting notes" in cached.content
    # The cache moves on once the publishing transaction commits.
    with django_capture_on_commit_callbacks(execute=True):
        add_course(catalogue, "fresh", title={"en": "A fresh course"})
    fresh = visitor.get("/courses/")
    assert fresh.get("X-Page-Cache") == "miss" and b"A fresh course" in fresh.content
    # Signed-in visitors never get the shared page.
    assert signed_in("member").get("/courses/").get("X-Page-Cache") is None


def count_queries(client: Client, url: str) -> int:
    cache.clear()  # measure the path that reads the catalogue, not a cached listing
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_query_counts_do_not_grow_with_the_number_of_courses(
    catalogue: CatalogueIndexPage, course: CoursePage
) -> None:
    learner = signed_in("counter")
    finish(learner, course)
    urls = ("/courses/", "/courses/notes/", "/passbook/")
    before = [count_queries(learner, url) for url in urls]
    for n in range(12):
        extra = add_course(catalogue, f"more-{n}")
        finish(learner, extra)
    after = [count_queries(learner, url) for url in urls]
    assert after == before


# --- learning ---------------------------------------------------------------------------------


def test_a_learner_goes_from_enrolment_to_a_verified_certificate(course: CoursePage) -> None:
    learner = signed_in("sita", name_local="सीता वर्मा")
    finish(learner, course)
    enrolment = Enrolment.objects.get()
    assert enrolment.completed is not None
    certificate = Certificate.objects.get()
    assert certificate.learner_name == "Sita Verma"
    assert certificate.learner_name_local == "सीता वर्मा"

    page = learner.get("/courses/notes/").content.decode()
    assert reverse("download_certificate", args=[certificate.id]) in page
    pdf = learner.get(reverse("download_certificate", args=[certificate.id]))
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    metadata = PdfReader(io.BytesIO(pdf.content)).metadata
    assert metadata is not None and "सीता वर्मा" in str(metadata.title)

    verify = Client().get(reverse("verify_certificate", args=[certificate.id]))
    assert verify.status_code == 200
    text = verify.content.decode()
    assert "Sita Verma" in text and "Noting and drafting notes" in text
    assert "sita@example.org" not in text

    passbook = learner.get("/passbook/").content.decode()
    assert "Noting and drafting" in passbook and "Written communication" in passbook


def test_a_forged_certificate_id_is_refused_and_reveals_nothing(course: CoursePage) -> None:
    finish(signed_in("real"), course)
    for forged in (str(uuid.uuid4()), "not-a-number", "<script>x</script>"):
        response = Client().get(f"/certificates/{forged}/")
        assert response.status_code == 404
        assert b"Sita" not in response.content and b"<script>x" not in response.content
    # Someone else's PDF is not theirs to download.
    other = signed_in("other")
    certificate = Certificate.objects.get()
    assert other.get(reverse("download_certificate", args=[certificate.id])).status_code == 404


@pytest.mark.parametrize(
    "answers, reason",
    [
        ({}, "Question 1 has no answer"),
        ({"q1": "0"}, "Question 2 has no answer"),
        ({"q1": "one", "q2": "0"}, "not a choice"),
        ({"q1": "7", "q2": "0"}, "not a choice"),
        ({"q1": "-1", "q2": "0"}, "not a choice"),
        ({"q1": ["0", "1"], "q2": "0"}, "takes one answer"),
        ({"q1": "0", "q2": "0", "q3": "1"}, "do not match"),
    ],
)
def test_malformed_quiz_answers_are_refused_and_nothing_is_recorded(
    course: CoursePage, answers: dict[str, Any], reason: str
) -> None:
    learner = signed_in("quizzer")
    learner.post(reverse("enrol", args=[course.translation_key]))
    response = learner.post(
        reverse("quiz", args=[course.translation_key, lesson_ids(course)["quiz"]]), answers
    )
    assert response.status_code == 400
    assert reason in response.content.decode()
    assert not QuizAttempt.objects.exists()


def test_answers_after_the_attempt_limit_are_refused(course: CoursePage) -> None:
    learner = signed_in("tries")
    key, quiz = course.translation_key, lesson_ids(course)["quiz"]
    learner.post(reverse("enrol", args=[key]))
    for _ in range(2):
        failed = learner.post(reverse("quiz", args=[key, quiz]), {"q1": "1", "q2": "2"})
        assert failed.status_code == 302
    refused = learner.post(reverse("quiz", args=[key, quiz]), {"q1": "0", "q2": ["0", "1"]})
    assert refused.status_code == 409
    assert "used all your attempts" in refused.content.decode()
    assert QuizAttempt.objects.count() == 2 and not QuizAttempt.objects.filter(passed=True)
    assert Enrolment.objects.get().completed is None


def test_lessons_need_an_enrolment_and_a_real_lesson(course: CoursePage) -> None:
    learner = signed_in("early")
    key, ids = course.translation_key, lesson_ids(course)
    assert learner.post(reverse("lesson_done", args=[key, ids["text"]])).status_code == 403
    learner.post(reverse("enrol", args=[key]))
    assert learner.post(reverse("lesson_done", args=[key, "no-such-lesson"])).status_code == 404
    assert learner.post(reverse("lesson_done", args=[key, ids["quiz"]])).status_code == 400
    assert not LessonDone.objects.exists()
    # Anonymous visitors are sent to sign in; nothing is written.
    assert Client().post(reverse("enrol", args=[key])).status_code == 302
    assert Enrolment.objects.count() == 1


# --- department reports -----------------------------------------------------------------------


def test_a_department_admin_sees_and_exports_only_their_department(
    course: CoursePage, settings: Any
) -> None:
    set_portal(settings, departments={"health": "Health Department"})
    finish(signed_in("health-learner", department="health"), course)
    finish(signed_in("finance-learner", department="finance"), course)
    admin = signed_in("health-admin", department="health", roles=("mdo_admin",))

    report = admin.get(reverse("department_report", args=["health"]))
    assert report.status_code == 200
    # Titled with the department's name from the spec, not its group's code.
    assert "Learning in department “Health Department”" in report.content.decode()
    rows = list(
        csv.DictReader(
            io.StringIO(
                b"".join(
                    admin.get(reverse("department_report_csv", args=["health"])).streaming_content
                ).decode()
            )
        )
    )
    assert [row["email"] for row in rows] == ["health-learner@example.org"]
    assert rows[0]["completed"] and rows[0]["certificate"]
    assert admin.get(reverse("department_report", args=["finance"])).status_code == 403
    assert admin.get(reverse("department_report_csv", args=["finance"])).status_code == 403
    # A learner without the role sees no report, even of their own department.
    learner = signed_in("nosy", department="health")
    assert learner.get(reverse("department_report", args=["health"])).status_code == 403


# --- bad input to the editor, uploads and seed files ------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"modules-count": "x"},
        {"modules-count": "1"},
        {"modules-count": "1", "modules-0-deleted": "", "modules-0-order": "0"},
        {
            "modules-count": "1",
            "modules-0-deleted": "",
            "modules-0-order": "zero",
            "modules-0-type": "module",
        },
    ],
)
def test_malformed_course_content_from_the_editor_is_a_form_error(data: dict[str, str]) -> None:
    block = CoursePage._meta.get_field("modules").stream_block
    value = block.value_from_datadict(data, {}, "modules")
    with pytest.raises(ValidationError, match="malformed, so nothing was saved"):
        block.clean(value)


def test_an_oversized_upload_is_refused_before_it_is_read(settings: Any) -> None:
    set_portal(settings, max_upload_mb=1)
    editor = Client()
    editor.force_login(get_user_model().objects.create_superuser("chief", "chief@example.org"))
    body = b"%PDF-1.4 " + b"0" * (2 * 1024 * 1024)
    response = editor.post(
        "/admin/documents/multiple/add/",
        {"files[]": SimpleUploadedFile("big.pdf", body, content_type="application/pdf")},
    )
    assert response.status_code == 413
    assert "limit of 1 MB. Nothing was saved." in response.content.decode()
    assert not Document.objects.exists()


def test_a_broken_seed_file_is_refused_in_one_line_and_creates_nothing(
    catalogue: CatalogueIndexPage, tmp_path: Any
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"provider": {"en": "x"}, "courses": [', encoding="utf-8")
    with pytest.raises(SeedError, match=r"broken.json:1: not JSON"):
        read_seed(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(
        '{"provider": {"en": "x"}, "courses": [{"slug": "Not A Slug"}]}', encoding="utf-8"
    )
    with pytest.raises(SeedError, match=r"wrong.json: courses.0.slug: String should match"):
        read_seed(wrong)
    assert not CoursePage.objects.exists()


def test_a_tenant_without_seed_files_gets_ten_hub_courses_of_its_own(
    catalogue: CatalogueIndexPage,
) -> None:
    assert seed("new-state") == 10
    entries = CatalogueEntry.objects.all()
    assert entries.count() == 10
    assert all(e.origin == "dev" and e.page_id for e in entries)
    assert all(set(e.languages) == {"en", "hi"} for e in entries)
    assert seed("new-state") == 0  # idempotent
