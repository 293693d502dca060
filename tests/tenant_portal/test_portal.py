"""The portal frame on PostgreSQL: health, CSRF, admin access, branding, roles → groups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.core.management import call_command
from django.test import Client

from infra.targets.local.keycloak import LocalKeycloak
from tenant_portal.accounts.backends import KeycloakBackend
from tenant_portal.accounts.roles import MANAGED_GROUPS, department_from_groups
from tenant_portal.home.models import HomePage
from tests.tenant_portal.conftest import set_portal

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def site(settings: Any) -> None:
    # As the rendered env sets them for Bihar.
    logo = Path(__file__).resolve().parents[2] / "tenants" / "branding" / "bihar.svg"
    set_portal(
        settings,
        branding={
            "site_name": "Bihar Karmayogi",
            "primary": "#8b1e3f",
            "on_primary": "#ffffff",
            "logo": str(logo),
        },
    )
    settings.WAGTAIL_SITE_NAME = "Bihar Karmayogi"
    call_command("sync_site", verbosity=0)


def signed_in_user(*roles: str, groups: tuple[str, ...] = ()) -> AbstractUser:
    backend = KeycloakBackend()
    claims = {
        "sub": "2f1c0a8e-sub",
        "given_name": "Ravi",
        "family_name": "Kumar",
        "email": "ravi@example.org",
        "roles": list(roles),
        "groups": list(groups),
    }
    existing = backend.filter_users_by_claims(claims).first()
    return backend.update_user(existing, claims) if existing else backend.create_user(claims)


def test_healthz_answers() -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_readyz_names_an_unreachable_realm(settings: Any) -> None:
    set_portal(settings, oidc={"issuer": "http://127.0.0.1:9/realms/nowhere"})
    response = Client().get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok" and checks["keycloak"].startswith("error")


def test_readyz_is_ready_with_database_and_realm(settings: Any, keycloak: LocalKeycloak) -> None:
    set_portal(settings, oidc={"issuer": f"{keycloak.url}/realms/master"})
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "keycloak": "ok"}


def test_every_page_carries_the_branding_skip_link_and_landmarks() -> None:
    html = Client().get("/").content.decode()
    assert "<title>Bihar Karmayogi</title>" in html
    assert "--brand-primary:#8b1e3f" in html
    assert '<a class="skip-link" href="#main">' in html
    for landmark in ("<header", "<nav", '<main id="main"', "<footer"):
        assert landmark in html
    assert '<html lang="en" dir="ltr">' in html


def test_right_to_left_language_sets_dir(settings: Any) -> None:
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ur"
    assert '<html lang="ur" dir="rtl">' in client.get("/").content.decode()


def test_sign_out_requires_csrf_but_the_language_switch_does_not() -> None:
    client = Client(enforce_csrf_checks=True)
    assert client.post("/auth/logout/").status_code == 403
    # Exempt on purpose: anonymous pages carry no per-visitor token, so they can be cached
    # whole; a forged request can only change the interface language.
    switched = client.post("/i18n/setlang/", {"language": "hi", "next": "/"})
    assert switched.status_code == 302 and client.cookies["django_language"].value == "hi"


def test_unknown_language_changes_nothing(settings: Any) -> None:
    client = Client()
    response = client.post("/i18n/setlang/", {"language": "xx", "next": "/"})
    assert response.status_code == 302
    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies
    assert '<html lang="en"' in client.get("/").content.decode()


def test_anonymous_users_cannot_reach_the_admin() -> None:
    response = Client().get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/auth/authenticate/")


@pytest.mark.parametrize(
    ("role", "group", "can_publish"),
    [
        ("content_creator", "Editors", False),
        ("content_reviewer", "Moderators", False),
        ("content_publisher", "Publishers", True),
        ("tenant_admin", "Tenant administrators", True),
    ],
)
def test_roles_map_to_wagtail_groups(role: str, group: str, can_publish: bool) -> None:
    user = signed_in_user(role)
    assert set(user.groups.values_list("name", flat=True)) == {group}
    home = HomePage.objects.get()
    assert home.permissions_for_user(user).can_publish() is can_publish
    assert user.has_perm("wagtailadmin.access_admin")
    assert not user.is_superuser
    client = Client()
    client.force_login(user)
    assert client.get("/admin/").status_code == 200


def test_tenant_administrators_hold_every_admin_permission() -> None:
    user = signed_in_user("tenant_admin")
    for permission in (
        "wagtailimages.delete_image",
        "wagtaildocs.change_document",
        "wagtailredirects.add_redirect",
        "branding.change_brandingsettings",
        "auth.change_user",
        "accounts.view_department_reports",
    ):
        assert user.has_perm(permission), permission
    client = Client()
    client.force_login(user)
    # The federation's screens: quarantined records to look at and clear, statements to read.
    assert client.get("/admin/quarantined/").status_code == 200
    assert client.get("/admin/quarantined/new/").status_code == 302  # no adding, even for them
    assert client.get("/admin/quarantined_packages/").status_code == 200
    assert client.get("/admin/quarantined_packages/new/").status_code == 302
    assert user.has_perm("xapi.view_outboxstatement")
    assert not user.has_perm("xapi.change_outboxstatement")
    permissions = HomePage.objects.get().permissions_for_user(user)
    assert permissions.can_add_subpage() and permissions.can_edit()
    assert permissions.can_publish() and permissions.can_lock() and permissions.can_unpublish()


def test_a_learner_has_no_admin_and_roles_are_replaced_at_each_sign_in() -> None:
    user = signed_in_user("content_publisher", "mdo_admin")
    assert set(user.groups.values_list("name", flat=True)) == {
        "Publishers",
        "Department administrators",
    }
    champions = Group.objects.create(name="Course champions")  # the portal's own group
    user.groups.add(champions)
    user = signed_in_user("learner")
    assert set(user.groups.values_list("name", flat=True)) == {"Course champions"}
    assert not set(user.groups.values_list("name", flat=True)) & MANAGED_GROUPS
    client = Client()
    client.force_login(user)
    assert client.get("/admin/").status_code == 302


def test_department_comes_from_the_groups_claim() -> None:
    user = signed_in_user(groups=("/other/x", "/departments/health"))
    assert get_user_model().objects.get(pk=user.pk).profile.department == "health"
    assert department_from_groups(["/departments/a/b"]) == ""


def test_admin_carries_the_tenant_colours() -> None:
    client = Client()
    client.force_login(signed_in_user("tenant_admin"))
    html = client.get("/admin/").content.decode()
    assert "--w-color-primary-hue:342;--w-color-primary-saturation:64%" in html
    assert "Bihar Karmayogi" in html
    assert 'class="karmayogi-admin-logo"' in html
