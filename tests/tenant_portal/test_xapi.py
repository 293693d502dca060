"""xAPI completions from an instance to the hub, over real HTTP with real tokens.

The hub runs as its own gunicorn process on its own PostgreSQL database, with a hub realm in
the session's Keycloak; the test process is a tenant (Bihar, or Rajasthan where a test needs a
row of the dashboard to itself). Learners complete courses through the portal's own views, the
outbox is delivered by the real delivery code, and the hub's endpoint and dashboard are read
over HTTP.
"""

from __future__ import annotations

import io
import json
import re
import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from infra.targets.local.keycloak import LocalKeycloak
from tenant_portal.catalogue.models import CatalogueEntry, CatalogueIndexPage, CoursePage
from tenant_portal.learning.models import Certificate
from tenant_portal.learning.progress import lessons_of
from tenant_portal.xapi import statements
from tenant_portal.xapi.delivery import BACKOFF_BASE, deliver, outbox_status
from tenant_portal.xapi.models import OutboxStatement
from tenant_portal.xapi.services import statements_store
from tenant_portal.xapi.validation import parse
from tests.postgres import PostgresServer
from tests.tenant_portal.conftest import set_portal
from tests.tenant_portal.federation_env import (
    Instance,
    Realms,
    hub_realms,
    master_token,
    new_instance,
)
from tests.tenant_portal.learning import add_course, make_user, prepare_site

pytestmark = pytest.mark.django_db

XAPI = {"X-Experience-API-Version": "1.0.3"}
KCM = "https://karmayogi.example/kcm"


def config(realms: Realms, code: str, *, hub: bool, hub_url: str) -> dict[str, Any]:
    return {
        "code": code,
        "isHub": hub,
        "hub": realms.hub,
        "hubIssuer": realms.issuer,
        "hubUrl": hub_url,
        "clientId": f"federation-{code}",
        "clientSecret": f"federation-{code}",
        "peers": [],
        # On the hub, the tenants are members of its federation (declared, no handshake).
        "members": [
            {
                "code": tenant,
                "name": tenant,
                "tenantType": "state",
                "portalUrl": f"https://{tenant}.example.org",
                "keysUrl": f"https://{tenant}.example.org/federation/v1/keys",
            }
            for tenant in realms.tenants
        ]
        if hub
        else [],
        "subscribe": None,
    }


@dataclass
class Hub:
    realms: Realms
    instance: Instance

    @property
    def url(self) -> str:
        return self.instance.url

    def request(
        self, method: str, name: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """A call to the statements resource with ``name``'s token (and the version header)."""
        sent = {"Authorization": f"Bearer {self.realms.token(name)}", **XAPI, **(headers or {})}
        return httpx.request(method, f"{self.url}/xapi/statements", headers=sent, **kwargs)

    def dashboard(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/federation/completions.json")
        assert response.status_code == 200
        return dict(response.json())

    def stored(self, statement_id: str) -> int:
        """How many rows the hub's database holds for ``statement_id``."""
        out = self.instance.manage(
            "shell",
            "--no-imports",
            "-c",
            "from tenant_portal.xapi.models import ReceivedStatement as R; "
            f"print(R.objects.filter(statement_id='{statement_id}').count())",
        ).stdout
        return int(out.strip())


@pytest.fixture(scope="module")
def hub(
    keycloak: LocalKeycloak, postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hub]:
    tmp = tmp_path_factory.mktemp("xapi")
    with hub_realms(keycloak, "bihar", "rajasthan") as realms:
        instance = new_instance(postgres, tmp, realms.hub, "127.0.0.31", {})
        instance.env["KARMAYOGI_FEDERATION"] = json.dumps(
            config(realms, realms.hub, hub=True, hub_url=instance.url)
        )
        try:
            instance.manage("prepare_portal", "-v0")
            instance.manage("seed_courses")
            instance.start()
            yield Hub(realms, instance)
        finally:
            instance.kill(signal.SIGTERM)


@dataclass
class Tenant:
    hub: Hub
    code: str
    catalogue: CatalogueIndexPage


def as_tenant(hub: Hub, name: str, settings: Any) -> Tenant:
    """The test process as tenant ``name`` of the hub's federation."""
    catalogue = prepare_site()
    code = hub.realms.realm(name)
    set_portal(
        settings, tenant=code, federation=config(hub.realms, code, hub=False, hub_url=hub.url)
    )
    return Tenant(hub, code, catalogue)


@pytest.fixture
def bihar(hub: Hub, settings: Any) -> Tenant:
    return as_tenant(hub, "bihar", settings)


@pytest.fixture
def rajasthan(hub: Hub, settings: Any) -> Tenant:
    return as_tenant(hub, "rajasthan", settings)


def complete(username: str, page: CoursePage, **user: Any) -> Certificate:
    """``username`` enrols and completes ``page`` through the portal's views."""
    learner = make_user(username, **user)
    client = Client()
    client.force_login(learner)
    key = page.translation_key
    ids = {lesson.kind: lesson.id for lesson in lessons_of(page.modules)}
    assert client.post(reverse("enrol", args=[key])).status_code == 302
    for kind in ("text", "link"):
        assert client.post(reverse("lesson_done", args=[key, ids[kind]])).status_code == 302
    answers = {"q1": "0", "q2": ["0", "1"]}
    assert client.post(reverse("quiz", args=[key, ids["quiz"]]), answers).status_code == 302
    return Certificate.objects.get(enrolment__user=learner, enrolment__entry__uuid=key)


def outbox(certificate: Certificate) -> OutboxStatement:
    return OutboxStatement.objects.get(certificate=certificate.id, verb=statements.COMPLETED)


# --- the statement and its delivery -----------------------------------------------------------


def test_a_completion_sends_one_pseudonymous_statement_that_the_hub_stores_once(
    bihar: Tenant, settings: Any
) -> None:
    page = add_course(bihar.catalogue, "notes")
    certificate = complete("ramesh.kumar.77", page, department="health")
    learner = certificate.enrolment.user

    row = OutboxStatement.objects.get()
    statement = row.statement
    text = json.dumps(statement, ensure_ascii=False)
    for personal in (
        learner.get_full_name(),
        learner.first_name,
        learner.last_name,
        learner.email,
        learner.get_username(),
        "health",
        certificate.learner_name,
    ):
        assert personal not in text
    pseudonym = statement["actor"]["account"]["name"]
    assert re.fullmatch(r"[0-9a-f]{32}", pseudonym)
    assert statement["actor"] == {
        "objectType": "Agent",
        "account": {"homePage": settings.PORTAL.portal_url, "name": pseudonym},
    }
    assert statement["id"] == str(
        uuid.uuid5(statements.NAMESPACE, f"{bihar.code}:certificate:{certificate.id}")
    )
    assert statement["verb"]["id"] == "http://adlnet.gov/expapi/verbs/completed"
    entry = CatalogueEntry.objects.get(uuid=page.translation_key)
    assert statement["object"]["id"] == entry.iri
    assert statement["object"]["definition"]["type"] == (
        "http://adlnet.gov/expapi/activities/course"
    )
    assert statement["object"]["definition"]["name"]["en"] == "Noting and drafting notes"
    assert statement["result"] == {"completion": True}
    assert statement["context"]["platform"] == bihar.code
    assert statement["context"]["extensions"][statements.AREAS_EXTENSION] == [
        f"{KCM}/behavioural",
        f"{KCM}/functional",
    ]
    assert statement["timestamp"] == certificate.issued.isoformat()

    # An internal course stays home: its completion sends nothing.
    internal = add_course(bihar.catalogue, "in-house")
    internal.internal = True
    internal.save_revision().publish()
    complete("another.learner", internal)
    assert OutboxStatement.objects.count() == 1

    result = deliver()
    assert (result.delivered, result.failed, result.rejected) == (1, 0, 0)
    row.refresh_from_db()
    assert row.state == OutboxStatement.DELIVERED and row.attempts == 1

    held = bihar.hub.request("GET", "bihar", params={"statementId": statement["id"]})
    assert held.status_code == 200 and held.headers["X-Experience-API-Version"] == "1.0.3"
    body = held.json()
    assert body["actor"] == statement["actor"] and body["version"] == "1.0.3"
    assert body["authority"]["account"]["name"] == f"federation-{bihar.code}"
    assert "stored" in body

    # Sent again by PUT, by POST, and by eight requests at once: still one row at the hub.
    again = bihar.hub.request(
        "PUT", "bihar", params={"statementId": statement["id"]}, json=statement
    )
    assert again.status_code == 204
    posted = bihar.hub.request("POST", "bihar", json=[statement])
    assert posted.status_code == 200 and posted.json() == [statement["id"]]
    fresh = statements.completion(
        certificate=uuid.uuid4(),
        user_pk=learner.pk,
        course_iri=entry.iri,
        course_name=entry.name,
        competencies=entry.competencies,
        completed=timezone.now(),
    )
    token = bihar.hub.realms.token("bihar")

    def put(_: int) -> int:
        return httpx.put(
            f"{bihar.hub.url}/xapi/statements",
            params={"statementId": fresh["id"]},
            json=fresh,
            headers={"Authorization": f"Bearer {token}", **XAPI},
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(put, range(8))) == {204}
    assert bihar.hub.stored(statement["id"]) == 1
    assert bihar.hub.stored(fresh["id"]) == 1
    assert deliver().delivered == 0  # nothing left to send

    # The list pages with `more`.
    first = bihar.hub.request("GET", "bihar", params={"limit": 1}).json()
    assert len(first["statements"]) == 1 and first["more"].startswith("/xapi/statements?")
    following = httpx.get(
        f"{bihar.hub.url}{first['more']}",
        headers={"Authorization": f"Bearer {token}", **XAPI},
    ).json()
    assert following["statements"][0]["id"] != first["statements"][0]["id"]


def test_courses_outside_the_federation_send_nothing(bihar: Tenant, settings: Any) -> None:
    internal = add_course(bihar.catalogue, "internal-only")
    internal.internal = True
    internal.save_revision().publish()
    complete("inside.only", internal)
    # A country that does not publish keeps its own learners' completions at home.
    set_portal(settings, federation=replace(settings.PORTAL.federation, publish=False))
    complete("stays.home", add_course(bihar.catalogue, "own-course"))
    assert not OutboxStatement.objects.exists()
    set_portal(settings, federation=replace(settings.PORTAL.federation, publish=True))
    complete("goes.out", add_course(bihar.catalogue, "published-course"))
    assert OutboxStatement.objects.count() == 1


def test_a_different_statement_under_a_held_id_is_a_conflict_and_is_not_retried(
    bihar: Tenant,
) -> None:
    page = add_course(bihar.catalogue, "conflict")
    row = outbox(complete("conflicted", page))
    other = {**row.statement, "timestamp": "2020-01-01T00:00:00+00:00"}
    first = bihar.hub.request("PUT", "bihar", params={"statementId": other["id"]}, json=other)
    assert first.status_code == 204

    result = deliver()
    assert result.rejected == 1 and result.delivered == 0
    row.refresh_from_db()
    assert row.state == OutboxStatement.REJECTED and row.attempts == 1
    assert "409" in row.last_error
    assert deliver(now=True).rejected == 0  # not sent again
    row.refresh_from_db()
    assert row.attempts == 1

    clash = bihar.hub.request(
        "PUT", "bihar", params={"statementId": row.statement["id"]}, json=row.statement
    )
    assert clash.status_code == 409 and "different statement" in clash.json()["error"]
    posted = bihar.hub.request("POST", "bihar", json=[row.statement])
    assert posted.status_code == 409


def test_while_the_hub_is_down_nothing_is_lost_and_the_outbox_drains_when_it_is_back(
    bihar: Tenant,
) -> None:
    page = add_course(bihar.catalogue, "outage")
    first = outbox(complete("during.outage", page))
    bihar.hub.instance.kill()
    try:
        attempted = timezone.now()
        result = deliver()
        assert (result.delivered, result.failed) == (0, 1)
        first.refresh_from_db()
        assert first.state == OutboxStatement.PENDING and first.attempts == 1
        assert "cannot reach the hub" in first.last_error
        assert f"federation-{bihar.code}" not in first.last_error  # the client secret
        assert "Bearer" not in first.last_error
        assert first.next_attempt_at >= attempted + timedelta(seconds=BACKOFF_BASE)

        # Waiting out its backoff, the row is not tried again.
        assert deliver().failed == 0
        first.refresh_from_db()
        assert first.attempts == 1
        # The command says so in one line and fails.
        with pytest.raises(CommandError, match="cannot reach the hub"):
            call_command("xapi_deliver", now=True)
        second = outbox(complete("also.during.outage", page))
    finally:
        bihar.hub.instance.start()

    # Back up: the new row goes, and once the hub answers, the row still in backoff goes too.
    result = deliver()
    assert (result.delivered, result.failed) == (2, 0)
    assert not OutboxStatement.objects.filter(state=OutboxStatement.PENDING).exists()
    for row in (first, second):
        found = bihar.hub.request("GET", "bihar", params={"statementId": row.statement["id"]})
        assert found.status_code == 200


# --- the endpoint's rules -----------------------------------------------------------------------


def test_the_endpoint_accepts_only_tokens_of_the_hub_realm(
    hub: Hub, keycloak: LocalKeycloak
) -> None:
    url = f"{hub.url}/xapi/statements"
    for headers in (
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": f"Bearer {master_token(keycloak)}"},
    ):
        response = httpx.get(url, headers={**headers, **XAPI})
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        put = httpx.put(url, params={"statementId": str(uuid.uuid4())}, json={}, headers=headers)
        assert put.status_code == 401
    assert hub.request("GET", "bihar").status_code == 200


def test_the_hub_refuses_personal_data_another_platform_and_a_missing_version(
    bihar: Tenant,
) -> None:
    statement = statements.completion(
        certificate=uuid.uuid4(),
        user_pk=1,
        course_iri="https://bihar.example.org/courses/1",
        course_name={"en": "A course"},
        competencies=[],
        completed=timezone.now(),
    )

    def put(body: dict[str, Any], **headers: str) -> httpx.Response:
        return httpx.put(
            f"{bihar.hub.url}/xapi/statements",
            params={"statementId": statement["id"]},
            json=body,
            headers={"Authorization": f"Bearer {bihar.hub.realms.token('bihar')}", **headers},
        )

    account = statement["actor"]["account"]
    refused = {
        "actor.mbox": {"objectType": "Agent", "mbox": "mailto:sita@example.org"},
        "actor.mbox_sha1sum": {"mbox_sha1sum": "a" * 40},
        "actor.openid": {"openid": "https://id.example.org/sita"},
        "actor.name": {"objectType": "Agent", "name": "Sita Verma", "account": account},
        "actor.account.name": {"account": {**account, "name": "sita@example.org"}},
    }
    for field, actor in refused.items():
        response = put({**statement, "actor": actor}, **XAPI)
        assert response.status_code == 400, field
        assert response.json()["error"].startswith(f"{field}:")
        assert response.headers["X-Experience-API-Version"] == "1.0.3"
    instructor = {**statement["context"], "instructor": statement["actor"]}
    assert put({**statement, "context": instructor}, **XAPI).status_code == 400
    assert put({**statement, "verb": "completed"}, **XAPI).status_code == 400

    rajasthan = bihar.hub.realms.realm("rajasthan")
    elsewhere = {**statement, "context": {**statement["context"], "platform": rajasthan}}
    forbidden = put(elsewhere, **XAPI)
    assert forbidden.status_code == 403 and "context.platform" in forbidden.json()["error"]

    for version in ({}, {"X-Experience-API-Version": "0.95"}):
        response = put(statement, **version)
        assert response.status_code == 400
        assert response.json()["error"].startswith("X-Experience-API-Version")

    huge = {**statement, "object": {**statement["object"], "id": "https://x.org/" + "a" * 70_000}}
    assert put(huge, **XAPI).status_code == 413
    assert bihar.hub.stored(statement["id"]) == 0  # none of it was stored

    # Only the hub has the resource and the dashboard.
    assert Client().get("/xapi/statements", headers=XAPI).status_code == 404
    assert Client().get("/federation/completions.json").status_code == 404


# --- voiding and the dashboard -----------------------------------------------------------------


def cell(dashboard: dict[str, Any], tenant: str, area: str) -> dict[str, Any]:
    row = next(r for r in dashboard["tenants"] if r["tenant"] == tenant)
    return dict(row["areas"][f"{KCM}/{area}"])


def test_the_dashboard_shows_five_learners_hides_four_and_voiding_takes_one_away(
    rajasthan: Tenant,
) -> None:
    hub, code = rajasthan.hub, rajasthan.code
    page = add_course(rajasthan.catalogue, "counted")
    certificates = [complete(f"learner-{n}", page) for n in range(4)]
    assert deliver().delivered == 4
    # Fewer than 5 learners: every figure of the portal is hidden, and so is its row.
    assert all(row["tenant"] != code for row in hub.dashboard()["tenants"])
    html = httpx.get(f"{hub.url}/federation/completions/", headers={"Accept-Language": "en"})
    assert html.status_code == 200 and code not in html.text
    assert "max-age=60" in html.headers["Cache-Control"]

    certificates.append(complete("learner-4", page))
    assert deliver().delivered == 1
    dashboard = hub.dashboard()
    assert cell(dashboard, code, "functional") == {"learners": 5, "suppressed": False}
    assert cell(dashboard, code, "behavioural") == {"learners": 5, "suppressed": False}
    row = next(r for r in dashboard["tenants"] if r["tenant"] == code)
    assert row["total"] == {"learners": 5, "suppressed": False}
    pseudonyms = [outbox(c).statement["actor"]["account"]["name"] for c in certificates]
    for text in (json.dumps(dashboard), httpx.get(f"{hub.url}/federation/completions/").text):
        assert not any(p in text for p in pseudonyms)

    # The certificate is revoked: a voiding statement goes, and the learner no longer counts.
    revoked = certificates[0]
    original = outbox(revoked).statement["id"]
    revoked_id = revoked.id
    revoked.delete()
    void = OutboxStatement.objects.get(certificate=revoked_id, verb=statements.VOIDED)
    assert void.statement["object"] == {"objectType": "StatementRef", "id": original}
    assert deliver().delivered == 1
    dashboard = hub.dashboard()
    assert all(row["tenant"] != code for row in dashboard["tenants"])
    assert hub.request("GET", "rajasthan", params={"statementId": original}).status_code == 404
    voided = hub.request("GET", "rajasthan", params={"voidedStatementId": original})
    assert voided.status_code == 200 and voided.json()["id"] == original
    # Statement counts and times would single out a learner: operators only.
    assert "operations" not in dashboard


def test_the_hub_counts_its_own_completions_sent_by_the_command(hub: Hub) -> None:
    script = (
        "from django.contrib.auth import get_user_model\n"
        "from django.db import transaction\n"
        "from tenant_portal.catalogue.blocks import lessons_of\n"
        "from tenant_portal.catalogue.models import CatalogueEntry, CoursePage\n"
        "from tenant_portal.learning.models import Enrolment, LessonDone\n"
        "from tenant_portal.learning.progress import complete_if_finished\n"
        "entry = CatalogueEntry.objects.filter(internal=False, page__isnull=False)"
        ".order_by('iri').first()\n"
        "page = CoursePage.objects.get(pk=entry.page_id)\n"
        "for n in range(5):\n"
        "    user = get_user_model().objects.create_user(username=f'hub-{n}')\n"
        "    enrolment = Enrolment.objects.create(user=user, entry=entry)\n"
        "    for lesson in lessons_of(page.modules):\n"
        "        LessonDone.objects.create(enrolment=enrolment, lesson=lesson.id)\n"
        "    with transaction.atomic():\n"
        "        complete_if_finished(enrolment)\n"
        "print(sorted({c['iri'].rsplit('/', 2)[0] for c in entry.competencies})[0])\n"
    )
    area = hub.instance.manage("shell", "--no-imports", "-c", script).stdout.strip()
    out = hub.instance.manage("xapi_deliver").stdout
    assert "5 delivered, 0 rejected, 0 failed" in out
    row = next(r for r in hub.dashboard()["tenants"] if r["tenant"] == hub.realms.hub)
    assert row["areas"][area] == {"learners": 5, "suppressed": False}


def test_totals_that_would_give_a_hidden_figure_back_are_hidden(settings: Any) -> None:
    """On the hub (the test process here): alpha has 7 learners in functional and 3 in
    behavioural; beta 6 learners, each in both areas through two courses."""
    prepare_site()
    set_portal(
        settings, federation={"code": "hub", "isHub": True, "hubIssuer": "https://kc/realms/hub"}
    )

    def send(tenant: str, learner: int, areas: list[str]) -> None:
        set_portal(settings, federation=replace(settings.PORTAL.federation, code=tenant))
        statement = statements.completion(
            certificate=uuid.uuid4(),
            user_pk=learner,
            course_iri=f"https://{tenant}.example.org/courses/{'-'.join(areas)}",
            course_name={"en": "A course"},
            competencies=[{"iri": f"{KCM}/{a}/t/s"} for a in areas],
            completed=timezone.now(),
        )
        statements_store(parsed=[parse(statement)], caller=tenant)

    def dashboard_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert Client().get("/federation/completions.json").status_code == 200
        return len(queries)

    for n in range(7):
        send("alpha", n, ["functional"])
    for n in range(7, 10):
        send("alpha", n, ["behavioural"])
    before = dashboard_queries()
    for n in range(6):
        send("beta", n, ["functional", "behavioural"])
        send("beta", n, ["functional"])
    set_portal(settings, federation=replace(settings.PORTAL.federation, code="hub"))
    assert dashboard_queries() == before  # the same queries however many tenants

    data = Client().get("/federation/completions.json").json()
    shown = {"suppressed": False}
    hidden = {"learners": None, "suppressed": True}
    assert cell(data, "alpha", "functional") == {"learners": 7, **shown}
    assert cell(data, "alpha", "behavioural") == hidden
    assert cell(data, "alpha", "domain") == hidden
    assert cell(data, "beta", "functional") == {"learners": 6, **shown}
    assert cell(data, "beta", "behavioural") == {"learners": 6, **shown}
    totals = {r["tenant"]: r["total"] for r in data["tenants"]}
    assert totals["alpha"] == hidden  # 10 - 7 would give alpha's behavioural 3
    assert totals["beta"] == {"learners": 6, **shown}  # a learner counts once
    assert data["areaTotals"][f"{KCM}/functional"] == {"learners": 13, **shown}
    assert data["areaTotals"][f"{KCM}/behavioural"] == hidden  # 9 - 6 would give the 3
    assert data["total"] == hidden  # 16 - 6 would give alpha's hidden total
    html = Client().get("/federation/completions/").content.decode()
    assert html.count("fewer than 5") == 7 and "<td>13</td>" in html
    assert "operations" not in data


# --- batches, failures in the middle, pruning -------------------------------------------------


def queue(count: int) -> list[OutboxStatement]:
    """``count`` completions in the outbox, each of its own learner, certificate and course."""
    now = timezone.now()
    rows = []
    for number in range(count):
        certificate = uuid.uuid4()
        statement = statements.completion(
            certificate=certificate,
            user_pk=10_000 + number,
            course_iri=f"https://learn.bihar.example/courses/{uuid.uuid4()}",
            course_name={"en": f"Course {number}", "hi": f"पाठ्यक्रम {number}"},
            competencies=[{"iri": f"{KCM}/functional/t/s"}, {"iri": f"{KCM}/domain/t/s"}],
            completed=now,
        )
        rows.append(
            OutboxStatement(
                statement_id=statement["id"],
                certificate=certificate,
                verb=statements.COMPLETED,
                statement=statement,
                next_attempt_at=now,
            )
        )
    return OutboxStatement.objects.bulk_create(rows)


def held_at_hub(hub: Hub, rows: list[OutboxStatement]) -> tuple[int, int]:
    """(statements, competency-area rows) the hub's database holds for ``rows``."""
    ids = json.dumps([str(r.statement_id) for r in rows])
    out = hub.instance.manage(
        "shell",
        "--no-imports",
        "-c",
        "from tenant_portal.xapi.models import ReceivedArea as A, ReceivedStatement as R; "
        f"ids = {ids}; "
        "print(R.objects.filter(statement_id__in=ids).count(), "
        "A.objects.filter(statement__statement_id__in=ids).count())",
    ).stdout
    statements_, areas = out.split()
    return int(statements_), int(areas)


class Hiccups(httpx.BaseTransport):
    """The real network, but for the requests numbered in ``faults`` (from 1): ``"lost"`` is
    sent to the hub and its answer lost (a timeout), a response is answered without the hub."""

    def __init__(self, faults: dict[int, str | httpx.Response]) -> None:
        self.real = httpx.HTTPTransport()
        self.faults = faults
        self.sent: list[tuple[str, int]] = []  # (method, statements in the body)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.read())
        self.sent.append((request.method, len(body) if isinstance(body, list) else 1))
        fault = self.faults.get(len(self.sent))
        if isinstance(fault, httpx.Response):
            return fault
        response = self.real.handle_request(request)
        if fault == "lost":
            response.read()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


def test_a_backlog_goes_in_batches_and_arrives_once_even_when_an_answer_is_lost(
    bihar: Tenant, settings: Any
) -> None:
    set_portal(settings, xapi_batch_size=4)
    rows = queue(10)
    # The hub stores the second batch but its answer never arrives: those rows stay pending
    # with the error, and the third batch is not sent in this run.
    network = Hiccups({2: "lost"})
    result = deliver(client=httpx.Client(transport=network))
    assert network.sent == [("POST", 4), ("POST", 4)]
    assert (result.delivered, result.failed, result.rejected) == (4, 4, 0)
    states = dict(OutboxStatement.objects.values_list("pk", "state"))
    assert [states[r.pk] for r in rows] == ["delivered"] * 4 + ["pending"] * 6
    second = OutboxStatement.objects.get(pk=rows[4].pk)
    assert second.attempts == 1 and second.last_error == "cannot reach the hub: ReadTimeout"
    assert OutboxStatement.objects.get(pk=rows[8].pk).attempts == 0  # never sent
    assert outbox_status()["pending"] == 6
    assert outbox_status()["last_error"] == "cannot reach the hub: ReadTimeout"

    # The retry sends the same ids again: nothing lost, nothing stored twice.
    network = Hiccups({})
    result = deliver(now=True, client=httpx.Client(transport=network))
    assert network.sent == [("POST", 4), ("POST", 2)]
    assert (result.delivered, result.failed) == (6, 0)
    assert not OutboxStatement.objects.filter(state=OutboxStatement.PENDING).exists()
    assert held_at_hub(bihar.hub, rows) == (10, 20)  # each statement once, its two areas once


def test_a_hub_that_refuses_the_caller_leaves_the_batch_pending_with_its_reason(
    bihar: Tenant, settings: Any
) -> None:
    set_portal(settings, xapi_batch_size=3)
    rows = queue(5)
    suspended = httpx.Response(401, json={"error": "the membership of bihar is suspended"})
    result = deliver(client=httpx.Client(transport=Hiccups({1: suspended})))
    assert (result.delivered, result.failed) == (0, 3)
    reason = "the hub answered 401: the membership of bihar is suspended"
    for row in OutboxStatement.objects.filter(pk__in=[r.pk for r in rows[:3]]):
        assert row.state == OutboxStatement.PENDING and row.last_error == reason
    assert outbox_status()["last_error"] == reason
    status = io.StringIO()
    call_command("xapi_deliver", status=True, stdout=status)
    assert status.getvalue().strip() == (
        f"xapi outbox: 5 pending, 0 delivered, 0 rejected, last error: {reason}"
    )

    # Next run: the two rows never tried go, and once the hub has answered, the three waiting
    # out their backoff go too.
    result = deliver()
    assert (result.delivered, result.failed) == (5, 0)
    assert held_at_hub(bihar.hub, rows) == (5, 10)


def test_a_conflict_in_a_batch_refuses_it_whole_and_delivery_sets_aside_only_that_row(
    bihar: Tenant, settings: Any
) -> None:
    set_portal(settings, xapi_batch_size=8)
    rows = queue(8)
    bad = rows[5]
    other = {**bad.statement, "timestamp": "2020-01-01T00:00:00+00:00"}
    put = bihar.hub.request("PUT", "bihar", params={"statementId": other["id"]}, json=other)
    assert put.status_code == 204

    # Posted directly: 409 for the whole batch, and none of the others is stored.
    posted = bihar.hub.request("POST", "bihar", json=[r.statement for r in rows])
    assert posted.status_code == 409
    assert (
        posted.json()["error"]
        == f"id {bad.statement_id}: a different statement is stored under this id"
    )
    assert held_at_hub(bihar.hub, rows) == (1, 2)

    network = Hiccups({})
    result = deliver(client=httpx.Client(transport=network))
    assert (result.delivered, result.rejected, result.failed) == (7, 1, 0)
    # 8 refused; the first 4 go; the last 4 refused; of them 2 refused: the row at fault
    # alone (a PUT) refused, its pair goes; the last 2 go.
    assert network.sent == [
        ("POST", 8),
        ("POST", 4),
        ("POST", 4),
        ("POST", 2),
        ("PUT", 1),
        ("PUT", 1),
        ("POST", 2),
    ]
    bad.refresh_from_db()
    assert bad.state == OutboxStatement.REJECTED
    assert bad.last_error.startswith("the hub answered 409: id ")
    assert OutboxStatement.objects.filter(state=OutboxStatement.DELIVERED).count() == 7
    assert held_at_hub(bihar.hub, rows) == (8, 16)


def test_a_batch_over_the_limits_is_refused_in_one_line(bihar: Tenant) -> None:
    statement = statements.completion(
        certificate=uuid.uuid4(),
        user_pk=1,
        course_iri="https://learn.bihar.example/courses/1",
        course_name={"en": "A course"},
        competencies=[],
        completed=timezone.now(),
    )
    many = [{**statement, "id": str(uuid.uuid4())} for _ in range(501)]
    refused = bihar.hub.request("POST", "bihar", json=many)
    assert refused.status_code == 413
    assert refused.json() == {"error": "statements: at most 500 statements per request"}
    name = {"en": "x" * 1000, "hi": "y" * 1000}
    big = [{**s, "object": {**s["object"], "definition": {"name": name}}} for s in many[:499]]
    refused = bihar.hub.request("POST", "bihar", json=big)
    assert refused.status_code == 413
    assert refused.json() == {"error": "the body is over 1024 KB"}
    empty = bihar.hub.request("POST", "bihar", json=[])
    assert empty.status_code == 400 and empty.json() == {"error": "statements: the array is empty"}
    twice = bihar.hub.request("POST", "bihar", json=[statement, statement])
    assert twice.status_code == 400
    assert twice.json() == {"error": "id: the request holds the same statement id twice"}
    assert bihar.hub.stored(statement["id"]) == 0


def test_delivered_rows_are_pruned_after_the_retention_and_a_void_still_goes(
    bihar: Tenant, settings: Any
) -> None:
    rows = queue(4)
    now = timezone.now()
    OutboxStatement.objects.filter(pk=rows[0].pk).update(
        state=OutboxStatement.DELIVERED, delivered=now - timedelta(days=31)
    )
    OutboxStatement.objects.filter(pk=rows[1].pk).update(
        state=OutboxStatement.DELIVERED, delivered=now - timedelta(days=29)
    )
    OutboxStatement.objects.filter(pk=rows[2].pk).update(
        state=OutboxStatement.REJECTED, last_error="the hub answered 400: x"
    )
    OutboxStatement.objects.filter(pk=rows[3].pk).update(next_attempt_at=now + timedelta(hours=1))
    result = deliver()  # the default: 30 days
    assert (result.delivered, result.pruned) == (0, 1)
    left = set(OutboxStatement.objects.values_list("pk", flat=True))
    assert left == {rows[1].pk, rows[2].pk, rows[3].pk}  # rejected and pending rows stay

    # 0: a row goes as soon as the hub has it.
    set_portal(settings, xapi_retention_days=0)
    page = add_course(bihar.catalogue, "pruned")
    certificate = complete("pruned.learner", page)
    original = str(statements.statement_id("certificate", certificate.id))
    result = deliver(now=True)
    assert (result.delivered, result.pruned) == (2, 3)
    assert set(OutboxStatement.objects.values_list("pk", flat=True)) == {rows[2].pk}
    assert "2 delivered, 0 rejected, 0 failed, 3 pruned" in result.line

    # Revoked after its row was pruned: the void is made from the certificate, same ids.
    certificate_id = certificate.id
    certificate.delete()
    void = OutboxStatement.objects.get(certificate=certificate_id)
    assert void.verb == statements.VOIDED
    assert void.statement["object"] == {"objectType": "StatementRef", "id": original}
    assert deliver().delivered == 1
    voided = bihar.hub.request("GET", "bihar", params={"voidedStatementId": original})
    assert voided.status_code == 200
