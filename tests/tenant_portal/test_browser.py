"""The portal and its realm in real Chromium: sign-in, languages, sign-out, and WCAG 2.1 AA.

The same flows as test_sign_in.py, but through the pages a person sees, with axe-core
checking each of them (DESIGN §5: WCAG 2.1 AA, checked in a real browser).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth import get_user_model
from django.utils import translation
from playwright.sync_api import Page, expect

from tests.tenant_portal.browser import (
    axe_violations,
    chromium_fixture,  # noqa: F401 (fixture)
    describe,
    open_sign_in,
    page_fixture,  # noqa: F401 (fixture)
    sign_in,
    submit_login_form,
    switch_language,
)
from tests.tenant_portal.conftest import PASSWORD, OidcTenant

pytestmark = pytest.mark.django_db(transaction=True)


def on_realm(tenant: OidcTenant, realm: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(tenant.keycloak_url)}/realms/{re.escape(realm)}/")


def test_sign_in_through_keycloak_lands_back_signed_in(page: Page, oidc_tenant: OidcTenant) -> None:
    user_id = oidc_tenant.create_user("asha.editor", "content_creator", department="health")
    open_sign_in(page, oidc_tenant.portal_url)
    expect(page).to_have_url(on_realm(oidc_tenant, oidc_tenant.tenant.code))
    expect(page).to_have_title(re.compile(re.escape(oidc_tenant.tenant.display_name)))
    expect(page.get_by_text(oidc_tenant.tenant.display_name).first).to_be_visible()

    submit_login_form(page, "asha.editor", PASSWORD)
    page.wait_for_url(f"{oidc_tenant.portal_url}/")
    expect(page.locator(".signed-in-as")).to_have_text("Signed in as Sunita Devi")
    expect(page.locator("dl.account")).to_contain_text("health")

    user = get_user_model().objects.get(profile__subject=user_id)
    assert set(user.groups.values_list("name", flat=True)) == {"Editors"}
    assert user.profile.department == "health"


def test_hindi_carries_to_keycloak_and_sign_out_ends_both_sessions(
    page: Page, oidc_tenant: OidcTenant
) -> None:
    oidc_tenant.create_user("meena.learner")
    page.goto(f"{oidc_tenant.portal_url}/")
    switch_language(page, "hi")
    expect(page.locator("html")).to_have_attribute("lang", "hi")
    # Django's own Hindi catalogue translates the switcher's button; the portal's strings are
    # whatever the Hindi catalogues say (English until the portal's own catalogue has them).
    expect(page.locator("form.language-switcher button")).to_have_text("बदलें")
    with translation.override("hi"):
        sign_in_label = translation.gettext("Sign in")
        signed_in_as = translation.gettext("Signed in as %(name)s") % {"name": "Sunita Devi"}
    expect(page.locator('a[href="/auth/authenticate/"]')).to_have_text(sign_in_label)

    page.locator('a[href="/auth/authenticate/"]').click()
    page.locator("#kc-form-login").wait_for()
    expect(page).to_have_url(on_realm(oidc_tenant, oidc_tenant.tenant.code))
    assert parse_qs(urlparse(page.url).query).get("ui_locales") == ["hi"]
    expect(page.locator("html")).to_have_attribute("lang", "hi")

    submit_login_form(page, "meena.learner", PASSWORD)
    page.wait_for_url(f"{oidc_tenant.portal_url}/")
    expect(page.locator("html")).to_have_attribute("lang", "hi")
    expect(page.locator(".signed-in-as")).to_have_text(signed_in_as)

    with page.expect_navigation(url=f"{oidc_tenant.portal_url}/"):
        page.locator('form[action="/auth/logout/"] button').click()
    expect(page.locator(".signed-in-as")).to_have_count(0)
    expect(page.locator('a[href="/auth/authenticate/"]')).to_be_visible()
    # Keycloak's session ended too: signing in again asks for the password.
    open_sign_in(page, oidc_tenant.portal_url)
    expect(page.locator("#password")).to_be_visible()


def test_tenant_session_does_not_sign_the_user_in_to_the_hub_realm(
    page: Page, oidc_tenant: OidcTenant
) -> None:
    oidc_tenant.create_user("ravi.learner")
    sign_in(page, oidc_tenant.portal_url, "ravi.learner", PASSWORD)

    # The tenant realm's own account console opens on the session just made ...
    page.goto(f"{oidc_tenant.keycloak_url}/realms/{oidc_tenant.tenant.code}/account/")
    expect(page.get_by_text("Sunita").first).to_be_visible()
    expect(page.locator("#kc-form-login")).to_have_count(0)
    # ... while the hub realm's, in the same browser, asks the user to sign in.
    page.goto(f"{oidc_tenant.keycloak_url}/realms/{oidc_tenant.hub.code}/account/")
    page.locator("#kc-form-login").wait_for()
    expect(page).to_have_url(on_realm(oidc_tenant, oidc_tenant.hub.code))


def test_pages_have_no_serious_accessibility_violations(
    page: Page, oidc_tenant: OidcTenant
) -> None:
    """Each page the sign-in journey shows, in English and in Hindi, under axe-core's AA rules.

    One journey for both languages keeps to one pair of realms: English signed out, signed in
    and in the admin; then Hindi signed in, in the admin, and signed out again.
    """
    oidc_tenant.create_user("kavita.publisher", "content_publisher")
    portal = oidc_tenant.portal_url
    found: dict[str, list[dict[str, Any]]] = {}

    def check(where: str, language: str) -> None:
        expect(page.locator("html")).to_have_attribute("lang", language)
        found[where] = axe_violations(page)

    page.goto(f"{portal}/")
    check("en: portal home, signed out", "en")
    open_sign_in(page, portal)
    check("en: Keycloak login page", "en")
    submit_login_form(page, "kavita.publisher", PASSWORD)
    page.wait_for_url(f"{portal}/")
    page.locator(".signed-in-as").wait_for()
    check("en: portal home, signed in", "en")
    page.goto(f"{portal}/admin/")
    check("en: Wagtail admin dashboard", "en")

    page.goto(f"{portal}/")
    switch_language(page, "hi")
    check("hi: portal home, signed in", "hi")
    page.goto(f"{portal}/admin/")
    # Wagtail's admin has no Hindi; it falls back to the tenant's first language.
    check("hi: Wagtail admin dashboard", "en")
    page.goto(f"{portal}/")
    with page.expect_navigation(url=f"{portal}/"):
        page.locator('form[action="/auth/logout/"] button').click()
    check("hi: portal home, signed out", "hi")
    open_sign_in(page, portal)
    check("hi: Keycloak login page", "hi")

    report = "\n".join(
        f"{where}:\n{describe(violations)}" for where, violations in found.items() if violations
    )
    assert not report, f"serious or critical WCAG 2.1 AA violations:\n{report}"


def test_axe_check_reports_what_it_should(page: Page) -> None:
    """The checker itself: a missing alt text is reported, unless that element is excluded."""
    page.set_content(
        '<html lang="en"><head><title>Probe</title></head>'
        '<body><main><h1>Probe</h1><img src="data:,"></main></body></html>'
    )
    assert [v["id"] for v in axe_violations(page)] == ["image-alt"]
    assert axe_violations(page, exclude=["img"]) == []
    assert axe_violations(page, disable=["image-alt"]) == []
