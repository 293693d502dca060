"""A learner's whole journey in real Chromium, signed in through Keycloak, checked by axe-core:
catalogue → course → enrolment → lessons → quiz → certificate → verification → passbook,
then the department administrator's report and its CSV."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from pypdf import PdfReader

from tests.tenant_portal.browser import (
    axe_violations,
    chromium_fixture,  # noqa: F401 (fixture)
    describe,
    page_fixture,  # noqa: F401 (fixture)
    sign_in,
)
from tests.tenant_portal.conftest import PASSWORD, OidcTenant
from tests.tenant_portal.learning import add_course, prepare_site

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_learner_earns_a_verified_certificate_and_their_department_sees_it(
    page: Page, oidc_tenant: OidcTenant
) -> None:
    portal = oidc_tenant.portal_url
    add_course(prepare_site(), "drafting")
    oidc_tenant.create_user("sita.learner", department="health", firstName="Sita", lastName="Verma")
    oidc_tenant.create_user("health.mdo", "mdo_admin", department="health")
    found: dict[str, list[dict[str, Any]]] = {}

    def check(where: str) -> None:
        found[where] = axe_violations(page)

    sign_in(page, portal, "sita.learner", PASSWORD)
    page.goto(f"{portal}/passbook/")
    page.locator("#name_local").fill("सीता वर्मा")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("saved")

    page.goto(f"{portal}/courses/")
    check("catalogue")
    page.get_by_label("Competency area").select_option("functional")
    page.get_by_role("button", name="Show courses").click()
    page.get_by_role("link", name="Noting and drafting drafting").click()
    expect(page.locator("h1")).to_have_text("Noting and drafting drafting")
    check("course, not enrolled")

    page.get_by_role("button", name="Enrol in this course").click()
    for title in ("What a note is", "Manual of Office Procedure"):
        page.get_by_role("button", name=f"Mark “{title}” as done").click()
    expect(page.locator(".enrolment")).to_contain_text("2 of 3 lessons done")
    page.locator('input[name="q1"][value="0"]').check()
    page.locator('input[name="q2"][value="0"]').check()
    page.locator('input[name="q2"][value="1"]').check()
    page.get_by_role("button", name="Submit answers").click()
    expect(page.locator(".messages")).to_contain_text("You passed with 100%")
    expect(page.locator(".completed")).to_be_visible()
    check("course, completed")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download your certificate (PDF)").click()
    pdf = PdfReader(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert pdf.metadata is not None and "सीता वर्मा" in str(pdf.metadata.title)
    assert "Sita Verma" in pdf.pages[0].extract_text()
    verify_url = pdf.metadata["/Subject"]
    page.goto(str(verify_url))
    expect(page.locator(".verified")).to_be_visible()
    expect(page.locator("main")).to_contain_text("सीता वर्मा")
    check("certificate verification")

    page.goto(f"{portal}/passbook/")
    for competency, level in (("Noting and drafting", "2"), ("Written communication", "3")):
        name = page.locator('th[scope="row"]', has_text=re.compile(rf"^{competency}$"))
        row = page.locator("table.passbook tr").filter(has=name)
        expect(row.locator("td").first).to_have_text(level)
    check("passbook")

    page.context.clear_cookies()
    sign_in(page, portal, "health.mdo", PASSWORD)
    page.get_by_role("link", name="Department reports").click()
    expect(page.locator("table.report")).to_contain_text("Sita Verma")
    check("department report")
    with page.expect_download() as export:
        page.get_by_role("link", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(export.value.path()).read_text("utf-8"))))
    assert [(r["email"], bool(r["completed"])) for r in rows] == [
        ("sita.learner@example.org", True)
    ]

    report = "\n".join(f"{where}:\n{describe(v)}" for where, v in found.items() if v)
    assert not report, f"serious or critical WCAG 2.1 AA violations:\n{report}"
