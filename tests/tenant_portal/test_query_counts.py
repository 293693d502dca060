"""Signed-in pages make a fixed number of queries however much there is, and what they keep for
everyone (each site's lookups, a course's rendered content) never shows one learner's state to
another and gives way at once to a publish (issue 18, goal 1).

Counts are of a page visited again, as a signed-in learner moves around: the first visits of a
page after a change find its route, read the page and render its content, and keep them for the
next ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest
from django.contrib.auth.models import AbstractUser, User
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from wagtail.models import PageViewRestriction

from tenant_portal.accounts.models import KeycloakSession
from tenant_portal.accounts.signals import EDITS_SESSION_KEY, REPORTS_SESSION_KEY
from tenant_portal.branding.models import BrandingSettings
from tenant_portal.catalogue import rendering
from tenant_portal.catalogue.models import CatalogueIndexPage, CoursePage
from tenant_portal.learning import state
from tenant_portal.learning.models import Certificate, Enrolment, LessonDone, QuizAttempt
from tests.tenant_portal.conftest import set_portal
from tests.tenant_portal.learning import add_course, course_seed, make_user, prepare_site
from tests.tenant_portal.test_learning import finish, lesson_ids
from tests.tenant_portal.test_logout_token import ISSUER, jwks_url, token

__all__ = ["jwks_url"]  # a fixture, used by name

pytestmark = pytest.mark.django_db

# Each page's queries once the session, the user, the site's lookups, the page and the
# course's content are kept: only what is the learner's own.
EXPECTED = {
    # the profile, courses in progress, certificates, imported credentials, the posts (the
    # home page; test_home counts it as courses and enrolments grow)
    "/": 5,
    "/courses/": 0,  # the listing is kept per query, page number and language
    "/courses/notes/": 0,  # the learner's state in it is kept until it changes
    # the profile, certificates, imported credentials, courses in progress, the posts (to
    # choose one from; test_role_based counts the page of an officer with a post)
    "/passbook/": 5,
}


@pytest.fixture
def catalogue() -> CatalogueIndexPage:
    return prepare_site()


@pytest.fixture
def course(catalogue: CatalogueIndexPage) -> CoursePage:
    return add_course(catalogue, "notes")


def sign_in(user: AbstractUser) -> Client:
    """A browser signed in as ``user``, its session holding what the sign-in decides once
    (accounts.signals): whether the header links to reports and the page to Wagtail's admin."""
    client = Client()
    client.force_login(cast(User, user))
    session = client.session
    session[REPORTS_SESSION_KEY] = False
    session[EDITS_SESSION_KEY] = False
    session.save()
    return client


def queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(captured)


def counts(client: Client, urls: list[str]) -> dict[str, int]:
    for url in urls:  # the first visits keep what the next ones reuse
        client.get(url)
        client.get(url)
    return {url: queries(client, url) for url in urls}


def many_lessons(count: int) -> dict[str, Any]:
    """A course seed's modules: ``count`` text lessons in two modules, then the usual quiz."""
    text = {
        "type": "text",
        "title": {"en": "Reading", "hi": "पाठ"},
        "body": {"en": "<p>Read this.</p>", "hi": "<p>यह पढ़ें।</p>"},
    }
    half = count // 2
    return {
        "modules": [
            {"title": {"en": "Part one", "hi": "भाग एक"}, "lessons": [text] * half},
            {"title": {"en": "Part two", "hi": "भाग दो"}, "lessons": [text] * (count - half)},
            course_seed("quiz").modules[-1],
        ]
    }


def finish_all(client: Client, page: CoursePage) -> None:
    """Enrol, fail the quiz once, then mark every lesson done and pass it."""
    key = page.translation_key
    client.post(reverse("enrol", args=[key]))
    quiz = lesson_ids(page)["quiz"]
    client.post(reverse("quiz", args=[key, quiz]), {"q1": "1", "q2": ["2"]})
    for lesson in page.lessons():
        if lesson.kind != "quiz":
            client.post(reverse("lesson_done", args=[key, lesson.id]))
    client.post(reverse("quiz", args=[key, quiz]), {"q1": "0", "q2": ["0", "1"]})


def test_signed_in_pages_make_the_same_few_queries_with_one_course_or_many(
    catalogue: CatalogueIndexPage, course: CoursePage
) -> None:
    learner = sign_in(make_user("counter"))
    finish(learner, course)
    urls = list(EXPECTED)
    assert counts(learner, urls) == EXPECTED

    for n in range(12):
        finish_all(learner, add_course(catalogue, f"more-{n}", **many_lessons(8 + n)))
    assert QuizAttempt.objects.filter(enrolment__user__username="counter").count() == 25
    assert counts(learner, urls) == EXPECTED
    # A course of 19 lessons and two attempts costs what one of 3 lessons and one does.
    assert counts(learner, ["/courses/more-11/"]) == {"/courses/more-11/": 0}


def test_a_course_page_read_afresh_asks_for_the_enrolment_then_the_lessons_together(
    course: CoursePage, settings: Any
) -> None:
    """Where the cache is not shared by the workers the learner's state is read every time:
    one query for a learner not enrolled, two for one enrolled, however many lessons."""
    settings.KARMAYOGI_LEARNER_STATE_CACHE = False
    visitor = sign_in(make_user("browsing"))
    assert counts(visitor, ["/courses/notes/"]) == {"/courses/notes/": 1}
    learner = sign_in(make_user("counter"))
    finish(learner, course)
    assert counts(learner, ["/courses/notes/"]) == {"/courses/notes/": 2}


def test_progress_changed_outside_the_learners_pages_shows_at_once(
    course: CoursePage, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    """An administrator's change (an attempt removed, the certificate withdrawn, the
    enrolment deleted) reaches the learner's kept state on their next page."""
    learner = sign_in(make_user("kept"))
    finish(learner, course)
    assert "Attempt 1: 100%" in learner.get("/courses/notes/").content.decode()
    enrolment = Enrolment.objects.get(user__username="kept")

    with django_capture_on_commit_callbacks(execute=True):
        QuizAttempt.objects.get(enrolment=enrolment).delete()
    page = learner.get("/courses/notes/").content.decode()
    assert "Attempt 1" not in page and "Download your certificate" in page

    with django_capture_on_commit_callbacks(execute=True):
        Certificate.objects.get(enrolment=enrolment).delete()
    page = learner.get("/courses/notes/").content.decode()
    assert "Download your certificate" not in page and "3 of 3 lessons done." in page

    with django_capture_on_commit_callbacks(execute=True):
        enrolment.delete()
    assert "Enrol in this course" in learner.get("/courses/notes/").content.decode()


def test_a_change_rolled_back_leaves_the_kept_state_as_it_was(course: CoursePage) -> None:
    """A learner's generation moves only when a change commits: a write rolled back neither
    forgets their state nor lets a page keep what the rolled-back write showed."""
    learner = sign_in(make_user("steady"))
    learner.post(reverse("enrol", args=[course.translation_key]))
    assert "0 of 3 lessons done." in learner.get("/courses/notes/").content.decode()
    enrolment = Enrolment.objects.get(user__username="steady")
    before = state.generation(state.generation_key(enrolment.user_id))

    class RolledBack(Exception):
        pass

    with pytest.raises(RolledBack), transaction.atomic():
        lesson = next(lesson for lesson in course.lessons() if lesson.kind != "quiz")
        LessonDone.objects.create(enrolment=enrolment, lesson=lesson.id)
        raise RolledBack
    assert state.generation(state.generation_key(enrolment.user_id)) == before
    assert "0 of 3 lessons done." in learner.get("/courses/notes/").content.decode()


def test_the_department_report_makes_the_same_queries_for_one_row_or_many(
    catalogue: CatalogueIndexPage, course: CoursePage
) -> None:
    admin = sign_in(make_user("mdo", department="health", roles=("mdo_admin",)))
    finish(sign_in(make_user("one", department="health")), course)
    url = reverse("department_report", args=["health"])
    before = counts(admin, [url])
    for n in range(8):
        finish(sign_in(make_user(f"learner-{n}", department="health")), course)
    assert counts(admin, [url]) == before


def test_a_learner_never_sees_another_learners_progress(
    course: CoursePage,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    asha = sign_in(make_user("asha"))
    finish(asha, course)
    done = asha.get("/courses/notes/").content.decode()
    assert "3 of 3 lessons done." in done and "✓ Done" in done
    assert "Download your certificate" in done and "Attempt 1: 100%" in done

    # The course's content is now kept; another learner gets that, with their own state only.
    def render_again(*args: Any) -> None:
        raise AssertionError("the course's content was rendered again")

    monkeypatch.setattr(rendering, "render_course", render_again)
    ravi = sign_in(make_user("ravi"))
    page = ravi.get("/courses/notes/").content.decode()
    assert "Enrol in this course" in page
    for asha_only in ("lessons done", "✓ Done", "Download your certificate", "Attempt 1"):
        assert asha_only not in page
    assert "quiz-preview" in page and 'class="quiz"' not in page

    with django_capture_on_commit_callbacks(execute=True):  # as the request's commit does
        ravi.post(reverse("enrol", args=[course.translation_key]))
    enrolled = ravi.get("/courses/notes/").content.decode()
    assert "0 of 3 lessons done." in enrolled and "✓ Done" not in enrolled
    assert 'class="quiz"' in enrolled and "Submit answers (2 attempts left)" in enrolled
    assert "Attempt 1" not in enrolled
    # And the first learner still sees their own.
    assert "3 of 3 lessons done." in asha.get("/courses/notes/").content.decode()


def test_an_anonymous_visitor_gets_the_content_without_anyones_state(course: CoursePage) -> None:
    finish(sign_in(make_user("asha")), course)
    page = Client().get("/courses/notes/").content.decode()
    assert "Sign in to enrol" in page and "What a note is" in page
    assert "lessons done" not in page and "✓ Done" not in page and "Attempt 1" not in page


def test_a_republished_course_shows_its_new_content_at_once_to_a_signed_in_learner(
    course: CoursePage, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    learner = sign_in(make_user("reader"))
    finish(learner, course)
    assert "What a note is" in learner.get("/courses/notes/").content.decode()

    page = CoursePage.objects.get(pk=course.pk)
    page.title = "Noting, revised"
    lesson = page.modules[0].value["lessons"][0]
    lesson.value["title"] = "What a note is now"
    with django_capture_on_commit_callbacks(execute=True):
        page.save_revision().publish()

    shown = learner.get("/courses/notes/").content.decode()
    assert "Noting, revised" in shown and "What a note is now" in shown
    assert "3 of 3 lessons done." in shown  # progress follows the lesson's block id

    with django_capture_on_commit_callbacks(execute=True):
        CoursePage.objects.get(pk=course.pk).unpublish()
    assert learner.get("/courses/notes/").status_code == 404


def test_a_branding_change_shows_at_once_on_signed_in_pages(
    course: CoursePage, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    learner = sign_in(make_user("reader"))
    for url in ("/courses/", "/courses/notes/", "/passbook/"):
        learner.get(url)
    branding = BrandingSettings.objects.get()
    branding.display_name = "Renamed Karmayogi"
    with django_capture_on_commit_callbacks(execute=True):
        branding.save()
    for url in ("/courses/", "/courses/notes/", "/passbook/"):
        assert "Renamed Karmayogi" in learner.get(url).content.decode(), url


def test_a_view_restriction_added_applies_at_once(
    course: CoursePage, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    learner = sign_in(make_user("reader"))
    assert learner.get("/courses/notes/").status_code == 200
    anonymous = Client()
    anonymous.get("/courses/notes/")
    assert anonymous.get("/courses/notes/").get("X-Page-Cache") == "hit"
    with django_capture_on_commit_callbacks(execute=True):
        restriction = PageViewRestriction.objects.create(
            page=course, restriction_type=PageViewRestriction.LOGIN
        )
    assert anonymous.get("/courses/notes/").status_code == 302  # to sign in
    assert learner.get("/courses/notes/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        restriction.delete()
    assert anonymous.get("/courses/notes/").status_code == 200


def test_the_enrolment_shown_is_the_learners_own_after_another_enrols(
    course: CoursePage,
) -> None:
    first, second = sign_in(make_user("first")), sign_in(make_user("second"))
    first.post(reverse("enrol", args=[course.translation_key]))
    assert "Enrol in this course" in second.get("/courses/notes/").content.decode()
    assert Enrolment.objects.count() == 1


def test_a_user_changed_by_a_sign_in_or_re_check_shows_at_once(
    course: CoursePage, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    user = make_user("renamed")
    client = sign_in(user)
    assert "Signed in as Sita Verma" in client.get("/courses/").content.decode()
    user.first_name = "Gita"
    with django_capture_on_commit_callbacks(execute=True):
        user.save()  # as KeycloakBackend.update_user does
    assert "Signed in as Gita Verma" in client.get("/courses/").content.decode()


def test_backchannel_logout_ends_a_session_read_from_the_cache_at_once(
    course: CoursePage, jwks_url: str, settings: Any
) -> None:
    user = cast(User, make_user("meena"))
    client = sign_in(user)
    KeycloakSession.objects.create(
        session_key=str(client.session.session_key), sid="keycloak-session-1", user=user
    )
    assert "Signed in as" in client.get("/courses/").content.decode()
    assert counts(client, ["/courses/"]) == {"/courses/": 0}  # the session is in the cache

    settings.OIDC_OP_JWKS_ENDPOINT = jwks_url
    settings.OIDC_RP_CLIENT_ID = "portal"
    set_portal(settings, oidc={"issuer": ISSUER})
    ended = Client().post(reverse("backchannel_logout"), {"logout_token": token()})
    assert ended.status_code == 200
    page = client.get("/courses/").content.decode()
    assert "Signed in as" not in page and "Sign in" in page
