"""The hub's public dashboard shows nothing the small-cell rule hides, personal responses stay
out of shared caches, and the department CSV cannot carry a formula (issue "Hardening",
items 1 and 7)."""

from __future__ import annotations

import csv
import io
import json
import uuid
from dataclasses import replace
from typing import Any, cast

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tenant_portal.learning.models import Enrolment
from tenant_portal.xapi import statements
from tenant_portal.xapi.models import ReceivedStatement
from tenant_portal.xapi.services import statements_store
from tenant_portal.xapi.validation import parse
from tests.tenant_portal.conftest import set_portal
from tests.tenant_portal.learning import add_course, make_user, prepare_site

pytestmark = pytest.mark.django_db

KCM = "https://karmayogi.example/kcm"


@pytest.fixture
def hub(settings: Any) -> Any:
    prepare_site()
    set_portal(
        settings, federation={"code": "hub", "isHub": True, "hubIssuer": "https://kc/realms/hub"}
    )
    return settings


def send(settings: Any, tenant: str, learner: int) -> None:
    set_portal(settings, federation=replace(settings.PORTAL.federation, code=tenant))
    statement = statements.completion(
        certificate=uuid.uuid4(),
        user_pk=learner,
        course_iri=f"https://{tenant}.example.org/courses/one",
        course_name={"en": "A course"},
        competencies=[{"iri": f"{KCM}/functional/t/s"}],
        completed=timezone.now(),
    )
    statements_store(parsed=[parse(statement)], caller=tenant)
    set_portal(settings, federation=replace(settings.PORTAL.federation, code="hub"))


def signed_in(username: str) -> Client:
    client = Client()
    client.force_login(cast(User, make_user(username)))
    return client


def test_one_completion_shows_no_count_no_time_and_no_row(hub: Any) -> None:
    send(hub, "bihar", 1)
    received = ReceivedStatement.objects.get(platform="bihar").stored
    data = Client().get("/federation/completions.json").json()
    assert "operations" not in data
    assert [row["tenant"] for row in data["tenants"]] == []
    assert data["total"] == {"learners": None, "suppressed": True}
    del data["generated"]  # when the page was made: the only time it carries
    text = json.dumps(data)
    html = Client().get("/federation/completions/").content.decode()
    for page in (text, html):
        assert "bihar" not in page
    # No time at all when a statement arrived, not even its day.
    assert received.date().isoformat() not in text
    assert "<time" not in html and "Last received" not in html

    for n in range(2, 6):
        send(hub, "bihar", n)
    data = Client().get("/federation/completions.json").json()
    row = next(r for r in data["tenants"] if r["tenant"] == "bihar")
    assert row["total"] == {"learners": 5, "suppressed": False}
    assert "operations" not in data


def test_operators_see_the_operations_table_privately(hub: Any) -> None:
    send(hub, "bihar", 1)
    operator = signed_in("operator")
    operator_user = operator.session["_auth_user_id"]
    from django.contrib.auth import get_user_model

    get_user_model().objects.get(pk=operator_user).user_permissions.add(
        Permission.objects.get(codename="view_receivedstatement")
    )
    page = operator.get("/federation/completions/")
    assert "bihar" in page.content.decode()
    assert "public" not in page["Cache-Control"]
    assert "private" in page["Cache-Control"] and "no-store" in page["Cache-Control"]
    assert "bihar" not in signed_in("learner").get("/federation/completions/").content.decode()


def test_the_dashboard_is_public_only_for_anonymous_visitors(hub: Any) -> None:
    anonymous = Client().get("/federation/completions/")
    assert "public" in anonymous["Cache-Control"] and "max-age=60" in anonymous["Cache-Control"]
    for url in ("/federation/completions/", "/federation/completions.json"):
        response = signed_in(f"visitor-{len(url)}").get(url)
        control = response["Cache-Control"]
        assert "public" not in control, url
        assert "private" in control and "no-store" in control, url
    # The page signed in carries a CSRF token (the sign-out form).
    page = signed_in("reader").get("/federation/completions/")
    assert "csrfmiddlewaretoken" in page.content.decode()


def test_the_department_csv_neutralises_formulas(settings: Any) -> None:
    catalogue = prepare_site()
    course = add_course(catalogue, "notes")
    set_portal(settings, departments={"health": "Health Department"})
    names = ["=HYPERLINK(1)", "+1", "-2", "@SUM(A1)", "\tx", "\rY", "Sita"]
    for name in names:
        # No full name: the CSV names the learner by their username, here the payload.
        user = cast(User, make_user(name, department="health"))
        user.first_name = user.last_name = ""
        user.save()
        Enrolment.objects.create(user=user, entry_id=course_entry(course))
    admin = Client()
    admin.force_login(
        cast(User, make_user("health-admin", department="health", roles=("mdo_admin",)))
    )
    response = admin.get(reverse("department_report_csv", args=["health"]))
    body = b"".join(cast(Any, response).streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert sorted(row["learner"] for row in rows) == sorted(
        [f"'{name}" for name in names[:-1]] + ["Sita"]
    )
    assert not any(row["email"].startswith(("=", "+", "-", "@")) for row in rows)


def course_entry(course: Any) -> int:
    from tenant_portal.catalogue.models import CatalogueEntry

    return int(CatalogueEntry.objects.get(uuid=course.translation_key).pk)
