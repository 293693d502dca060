"""Helpers for the course and learning tests: a portal with its site, framework and courses."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from tenant_portal.accounts.models import Profile
from tenant_portal.accounts.roles import sync_groups
from tenant_portal.catalogue.models import CatalogueIndexPage, CoursePage
from tenant_portal.learning.progress import lessons_of
from tenant_portal.learning.seed import CourseSeed, _sub_themes, seed_course


def prepare_site() -> CatalogueIndexPage:
    call_command("sync_site", verbosity=0)
    call_command("load_competencies", if_empty=True, verbosity=0)
    return CatalogueIndexPage.objects.get()


def course_seed(slug: str, **overrides: Any) -> CourseSeed:
    """A two-module course in English and Hindi: a text lesson, a link, and a quiz of two
    questions (the second has two right answers) with pass mark 50 and two attempts."""
    data: dict[str, Any] = {
        "slug": slug,
        "title": {"en": f"Noting and drafting {slug}", "hi": f"टिप्पण और प्रारूपण {slug}"},
        "summary": {"en": "Write clear notes on files.", "hi": "फ़ाइलों पर स्पष्ट टिप्पणी लिखें।"},
        "durationMinutes": 90,
        "competencies": [
            {
                "area": "functional",
                "theme": "policy-and-regulation",
                "subTheme": "noting-and-drafting",
                "level": 2,
            },
            {
                "area": "behavioural",
                "theme": "communication",
                "subTheme": "written-communication",
                "level": 3,
            },
        ],
        "modules": [
            {
                "title": {"en": "Basics", "hi": "मूल बातें"},
                "lessons": [
                    {
                        "type": "text",
                        "title": {"en": "What a note is", "hi": "टिप्पणी क्या है"},
                        "body": {"en": "<p>A note records…</p>", "hi": "<p>टिप्पणी…</p>"},
                    },
                    {
                        "type": "link",
                        "title": {"en": "Manual of Office Procedure", "hi": "कार्यालय पद्धति"},
                        "url": "https://dopt.gov.in/",
                        "description": {"en": "The manual.", "hi": "नियमावली।"},
                    },
                ],
            },
            {
                "title": {"en": "Check yourself", "hi": "स्वयं जाँचें"},
                "lessons": [
                    {
                        "type": "quiz",
                        "title": {"en": "Quiz", "hi": "प्रश्नोत्तरी"},
                        "passMark": 50,
                        "maxAttempts": 2,
                        "questions": [
                            {
                                "prompt": {"en": "A note should be…", "hi": "टिप्पणी…"},
                                "choices": [
                                    {"text": {"en": "brief", "hi": "संक्षिप्त"}, "correct": True},
                                    {"text": {"en": "long", "hi": "लंबी"}, "correct": False},
                                    {"text": {"en": "vague", "hi": "अस्पष्ट"}, "correct": False},
                                ],
                            },
                            {
                                "prompt": {"en": "Which belong in a note?", "hi": "क्या?"},
                                "choices": [
                                    {"text": {"en": "facts", "hi": "तथ्य"}, "correct": True},
                                    {"text": {"en": "rules", "hi": "नियम"}, "correct": True},
                                    {"text": {"en": "gossip", "hi": "गपशप"}, "correct": False},
                                ],
                            },
                        ],
                    }
                ],
            },
        ],
        **overrides,
    }
    return CourseSeed.model_validate(data)


PROVIDER = {"en": "Institute of Secretariat Training", "hi": "सचिवालय प्रशिक्षण संस्थान"}


def add_course(catalogue: CatalogueIndexPage, slug: str, **overrides: Any) -> CoursePage:
    page = seed_course(catalogue, course_seed(slug, **overrides), PROVIDER, _sub_themes())
    assert page is not None
    return page


def make_user(
    username: str, *, department: str = "", roles: tuple[str, ...] = (), name_local: str = ""
) -> AbstractUser:
    user = get_user_model().objects.create_user(
        username=username, email=f"{username}@example.org", first_name="Sita", last_name="Verma"
    )
    Profile.objects.create(
        user=user,
        subject=f"sub-{username}",
        department=department,
        roles=list(roles),
        name_local=name_local,
    )
    sync_groups(user, roles)
    return user


def lesson_ids(page: CoursePage) -> dict[str, str]:
    return {lesson.kind: lesson.id for lesson in lessons_of(page.modules)}


def finish(client: Client, page: CoursePage) -> None:
    """The signed-in ``client`` enrols in the seeded course ``page`` and completes it."""
    key = page.translation_key
    assert client.post(reverse("enrol", args=[key])).status_code == 302
    ids = lesson_ids(page)
    for kind in ("text", "link"):
        assert client.post(reverse("lesson_done", args=[key, ids[kind]])).status_code == 302
    answer = client.post(reverse("quiz", args=[key, ids["quiz"]]), {"q1": "0", "q2": ["0", "1"]})
    assert answer.status_code == 302
