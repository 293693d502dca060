"""Concurrent writes on the embedded default, SQLite, never answer 500 (issue "Hardening",
item 3).

A portal runs as the local target runs it: gunicorn with threads, the dev settings, SQLite in
its data folder. Learners double-click "mark done" and fire a quiz form ten times at once, over
real HTTP; every answer is a redirect or a refusal, and the database holds exactly what it
should.
"""

from __future__ import annotations

import json
import secrets
import signal
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from infra.net import free_port
from tenant_portal.core.db_busy import DatabaseBusyMiddleware
from tests.tenant_portal.federation_env import Instance, instance_env

CODE = "sqlite-race"
LEARNERS = 6
SETUP = """
import json
from django.conf import settings
from django.test import Client
from tenant_portal.catalogue.models import CatalogueEntry
from tenant_portal.learning.models import Enrolment
from tenant_portal.learning.progress import lessons_of
from tests.tenant_portal.learning import add_course, make_user, prepare_site

page = add_course(prepare_site(), "race")
entry = CatalogueEntry.objects.get(uuid=page.translation_key)
sessions = []
for n in range(%(learners)d):
    client = Client()
    user = make_user(f"learner-{n}")
    Enrolment.objects.create(user=user, entry=entry)
    client.force_login(user)
    sessions.append(client.cookies[settings.SESSION_COOKIE_NAME].value)
lessons = {lesson.kind: lesson.id for lesson in lessons_of(page.modules)}
print(json.dumps({"course": str(entry.uuid), "lessons": lessons, "sessions": sessions}))
"""
COUNT = """
from tenant_portal.learning.models import LessonDone, QuizAttempt
print(LessonDone.objects.count(), QuizAttempt.objects.count())
"""


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    data_dir: Path = tmp_path_factory.mktemp("sqlite") / CODE
    data_dir.mkdir()
    url = f"http://127.0.0.1:{free_port('127.0.0.1')}"
    env = instance_env(
        CODE,
        url=url,
        database_url=f"sqlite:///{data_dir / 'portal.sqlite3'}",
        data_dir=data_dir,
        federation={},
        domain=f"{CODE}.example.org",
    )
    instance = Instance(CODE, url, env, data_dir)
    instance.manage("prepare_portal", "-v0")
    instance.start()
    try:
        yield instance
    finally:
        instance.kill(signal.SIGTERM)


def test_double_clicks_and_bursts_of_quiz_answers_never_fail(portal: Instance) -> None:
    out = portal.manage("shell", "--no-imports", "-c", SETUP % {"learners": LEARNERS}).stdout
    setup = json.loads(out.splitlines()[-1])  # after what sync_site says
    course, lessons = setup["course"], setup["lessons"]
    prefix = CODE.replace("-", "_")
    csrf = secrets.token_hex(16)

    def post(session: str, path: str, data: dict[str, Any] | None = None) -> int:
        cookies = {f"karmayogi_{prefix}_session": session, f"karmayogi_{prefix}_csrftoken": csrf}
        response = httpx.post(
            f"{portal.url}{path}",
            data=data or {},
            cookies=cookies,
            headers={"X-CSRFToken": csrf},
            timeout=60,
        )
        return response.status_code

    done = f"/learn/{course}/lessons/{{}}/done/"
    quiz = f"/learn/{course}/quizzes/{lessons['quiz']}/"
    # Every learner double-clicks "mark done" on both lessons, all at once; one learner sends
    # a wrong answer to the quiz (two attempts allowed) ten times at once.
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        (session, done.format(lessons[kind]), None)
        for session in setup["sessions"]
        for kind in ("text", "link")
        for _click in range(2)
    ]
    calls += [(setup["sessions"][0], quiz, {"q1": "1", "q2": "2"})] * 10
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        statuses = list(pool.map(lambda call: post(*call), calls))
    assert 500 not in statuses, statuses
    done_statuses, quiz_statuses = statuses[:-10], statuses[-10:]
    assert set(done_statuses) == {302}, done_statuses
    assert sorted(quiz_statuses) == [302, 302] + [409] * 8, quiz_statuses
    counts = portal.manage("shell", "--no-imports", "-c", COUNT).stdout.split()
    assert counts == [str(LEARNERS * 2), "2"]  # each lesson done once; two attempts, no more
    # Each learner's course page shows their progress (the learner state's query runs on
    # SQLite too; it once failed there with an ORDER BY inside its UNION).
    cookies = {f"karmayogi_{prefix}_session": setup["sessions"][0]}
    english = {"Accept-Language": "en"}
    page = httpx.get(f"{portal.url}/courses/race/", cookies=cookies, headers=english, timeout=60)
    assert page.status_code == 200
    assert "2 of 3 lessons done" in page.text, page.text[-3000:]


def test_a_write_that_outwaits_the_lock_answers_503_with_retry_after(tmp_path: Path) -> None:
    """SQLite's own "database is locked", raised in a view, becomes a 503 page."""
    holder = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    waiter = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError) as locked:
            waiter.execute("BEGIN IMMEDIATE")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        waiter.close()

    def view(request: HttpRequest) -> HttpResponse:
        raise OperationalError(str(locked.value)) from locked.value

    middleware = DatabaseBusyMiddleware(view)
    request = RequestFactory().post("/learn/x/lessons/y/done/")
    with pytest.raises(OperationalError) as raised:
        view(request)
    response = middleware.process_exception(request, raised.value)
    assert response is not None and response.status_code == 503
    assert response["Retry-After"] == "5"
    # Any other database error is left to Django's 500.
    assert middleware.process_exception(request, OperationalError("no such table")) is None
