"""The home pages in real Chromium, checked by axe-core (issue 19, item 4): signed out and signed
in, in English and in Hindi, with featured courses, the competency areas, a course in progress,
the next course on the officer's path and a certificate on them."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from tenant_portal.accounts.models import Profile
from tenant_portal.catalogue.models import CatalogueEntry
from tests.tenant_portal.browser import (
    axe_violations,
    chromium_fixture,  # noqa: F401 (fixture)
    describe,
    page_fixture,  # noqa: F401 (fixture)
    switch_language,
)
from tests.tenant_portal.learning import add_course, finish, make_user, prepare_site
from tests.tenant_portal.test_query_counts import sign_in
from tests.tenant_portal.test_role_based import federated_course, make_post

pytestmark = pytest.mark.django_db(transaction=True)


def test_home_pages_have_no_serious_accessibility_violations(
    page: Page, live_server: LiveServer
) -> None:
    catalogue = prepare_site()
    done = add_course(catalogue, "done")
    started = add_course(catalogue, "started")
    entry = federated_course("featured", {"noting-and-drafting": 4}, ["en", "hi"])
    CatalogueEntry.objects.filter(pk=entry.pk).update(featured=True)
    make_post("bdo", {"en": "Block Development Officer"}, {"noting-and-drafting": 4})
    user = make_user("officer", department="health")
    Profile.objects.filter(user=user).update(post_chosen="bdo")
    client = sign_in(user)
    finish(client, done)
    client.post(f"/learn/{started.translation_key}/enrol/")
    found: dict[str, list[dict[str, Any]]] = {}

    def check(where: str, language: str, heading: str) -> None:
        expect(page.locator("html")).to_have_attribute("lang", language)
        expect(page.locator(f"#{heading}")).to_be_visible()
        found[where] = axe_violations(page)

    page.goto(f"{live_server.url}/")
    check("en: home, signed out", "en", "featured-heading")
    switch_language(page, "hi")
    check("hi: home, signed out", "hi", "areas-heading")

    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
    )
    page.goto(f"{live_server.url}/")
    check("hi: home, signed in", "hi", "next-heading")
    switch_language(page, "en")
    check("en: home, signed in", "en", "continue-heading")
    expect(page.locator(".next-course")).to_contain_text("Course featured")

    report = "\n".join(
        f"{where}:\n{describe(violations)}" for where, violations in found.items() if violations
    )
    assert not report, f"serious or critical WCAG 2.1 AA violations:\n{report}"
