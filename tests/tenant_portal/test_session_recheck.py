"""The session re-check: a portal session ends with its realm session, and follows the roles,
department and names the realm has now. Against the real Keycloak and the live portal."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session

from tenant_portal.accounts import realm_session
from tests.identity.browser import browser_session
from tests.tenant_portal.conftest import OidcTenant, set_portal
from tests.tenant_portal.test_sign_in import groups_of, portal_sign_in

pytestmark = pytest.mark.django_db(transaction=True)

REPORTS_LINK = "Department reports"


def end_realm_sessions_quietly(tenant: OidcTenant, user_id: str) -> None:
    """End the user's realm sessions as expiry does: Keycloak sends the portal no logout token
    (the portal client's back-channel logout URL is cleared first)."""
    realm = tenant.tenant.code
    client = tenant.api.get(f"/{realm}/clients", "portal client", clientId="portal")[0]
    client.setdefault("attributes", {})["backchannel.logout.url"] = ""
    tenant.api.put(f"/{realm}/clients/{client['id']}", client, "no back-channel logout")
    tenant.api.post(f"/{realm}/users/{user_id}/logout", {}, "end the user's sessions")
    assert not tenant.api.get(f"/{realm}/users/{user_id}/sessions", "sessions")


def update_user(tenant: OidcTenant, user_id: str, **changes: Any) -> None:
    realm = tenant.tenant.code
    rep = tenant.api.get(f"/{realm}/users/{user_id}", "user")
    tenant.api.put(f"/{realm}/users/{user_id}", {**rep, **changes}, "update user")


def leave_department(tenant: OidcTenant, user_id: str) -> None:
    realm = tenant.tenant.code
    for group in tenant.api.get(f"/{realm}/users/{user_id}/groups", "user's groups"):
        tenant.api.delete(f"/{realm}/users/{user_id}/groups/{group['id']}", "leave group")


def signed_in(page: httpx.Response) -> bool:
    return "Signed in as" in page.text


def test_realm_session_gone_ends_access_to_the_department_csv_at_once(
    oidc_tenant: OidcTenant,
) -> None:
    """Within the interval (300 s here): the CSV is privileged, so it is checked every time."""
    user_id = oidc_tenant.create_user("uma.mdo", "mdo_admin", department="health")
    csv = f"{oidc_tenant.portal_url}/reports/health/csv/"
    with browser_session() as session:
        portal_sign_in(session, oidc_tenant, "uma.mdo")
        downloaded = session.get(csv)
        assert downloaded.status_code == 200
        assert downloaded.headers["content-type"].startswith("text/csv")
        end_realm_sessions_quietly(oidc_tenant, user_id)
        assert Session.objects.count() == 1  # Keycloak told the portal nothing

        refused = session.get(csv)
        assert refused.status_code == 302
        assert refused.headers["location"].startswith("/auth/authenticate/?next=")
        assert not Session.objects.exists()
        page = session.get(f"{oidc_tenant.portal_url}/")
        assert page.status_code == 200 and not signed_in(page) and "Sign in" in page.text


def test_plain_page_shows_signed_out_once_the_realm_session_is_gone(
    oidc_tenant: OidcTenant, settings: Any
) -> None:
    set_portal(settings, session_recheck_seconds=0)  # every request is due
    user_id = oidc_tenant.create_user("kavya.learner")
    with browser_session() as session:
        home = portal_sign_in(session, oidc_tenant, "kavya.learner")
        assert signed_in(home)
        end_realm_sessions_quietly(oidc_tenant, user_id)
        page = session.get(f"{oidc_tenant.portal_url}/")
    assert page.status_code == 200
    assert not signed_in(page) and "Sign in" in page.text
    assert not Session.objects.exists()


def test_role_removed_in_keycloak_stops_a_privileged_action_at_once(
    oidc_tenant: OidcTenant,
) -> None:
    user_id = oidc_tenant.create_user("ravi.mdo", "mdo_admin", department="health")
    report = f"{oidc_tenant.portal_url}/reports/health/"
    with browser_session() as session:
        portal_sign_in(session, oidc_tenant, "ravi.mdo")
        assert session.get(report).status_code == 200
        oidc_tenant.revoke(user_id, "mdo_admin")
        refused = session.get(report)
        # The realm session lives: still signed in, without the role.
        assert refused.status_code == 403
        assert groups_of(user_id) == set()
        assert signed_in(session.get(f"{oidc_tenant.portal_url}/"))


def test_roles_department_and_names_follow_the_realm_on_plain_pages_within_the_interval(
    oidc_tenant: OidcTenant, settings: Any
) -> None:
    user_id = oidc_tenant.create_user("lata.mdo", "mdo_admin", department="health")
    with browser_session() as session:
        session.headers["Accept-Language"] = "en"
        home = portal_sign_in(session, oidc_tenant, "lata.mdo")
        assert REPORTS_LINK in home.text
        oidc_tenant.revoke(user_id, "mdo_admin")
        leave_department(oidc_tenant, user_id)
        update_user(oidc_tenant, user_id, firstName="Lata", lastName="Mangeshkar")
        set_portal(settings, session_recheck_seconds=0)  # the interval has passed
        page = session.get(f"{oidc_tenant.portal_url}/")
    assert page.status_code == 200
    assert "Signed in as Lata Mangeshkar" in page.text
    assert REPORTS_LINK not in page.text
    assert groups_of(user_id) == set()
    profile = get_user_model().objects.get(profile__subject=user_id).profile
    assert profile.department == "" and "mdo_admin" not in profile.roles


def test_portal_session_ends_no_later_than_the_realm_session(oidc_tenant: OidcTenant) -> None:
    realm = oidc_tenant.tenant.code
    # A maximum shorter than the idle timeout, so the maximum is what bounds the session.
    oidc_tenant.api.put(f"/{realm}", {"ssoSessionMaxLifespan": 600}, "short SSO maximum")
    limits = oidc_tenant.api.get(f"/{realm}", "realm")
    idle, maximum = limits["ssoSessionIdleTimeout"], limits["ssoSessionMaxLifespan"]
    assert maximum == 600 < idle
    user_id = oidc_tenant.create_user("tara.mdo", "mdo_admin", department="health")
    with browser_session() as session:
        assert signed_in(portal_sign_in(session, oidc_tenant, "tara.mdo"))
        (kc_session,) = oidc_tenant.api.get(f"/{realm}/users/{user_id}/sessions", "sessions")
        started = datetime.fromtimestamp(kc_session["start"] / 1000, tz=UTC)
        realm_end = started + timedelta(seconds=maximum)
        assert Session.objects.get().expire_date <= realm_end
        # A re-check (reports are privileged) refreshes the token: the end does not move.
        assert session.get(f"{oidc_tenant.portal_url}/reports/health/").status_code == 200
        stored = Session.objects.get()
        assert stored.expire_date <= realm_end
    # The refresh token is kept encrypted: what the session store holds is not the token.
    state = stored.get_decoded()[realm_session.REALM_SESSION_KEY]
    encrypted = state["refresh"]
    token = realm_session._decrypt(encrypted)
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["typ"] == "Refresh" and token not in json.dumps(stored.get_decoded())


def test_keycloak_unreachable_fails_closed_for_privileged_actions_only(
    oidc_tenant: OidcTenant, settings: Any
) -> None:
    oidc_tenant.create_user("nila.mdo", "mdo_admin", department="health")
    report = f"{oidc_tenant.portal_url}/reports/health/"
    with browser_session() as session:
        portal_sign_in(session, oidc_tenant, "nila.mdo")
        token_endpoint = settings.OIDC_OP_TOKEN_ENDPOINT
        settings.OIDC_OP_TOKEN_ENDPOINT = "http://127.0.0.1:9/token"  # nothing listens there
        set_portal(settings, session_recheck_seconds=0)
        page = session.get(f"{oidc_tenant.portal_url}/")
        assert page.status_code == 200 and signed_in(page)  # a blip signs nobody out
        assert session.get(report).status_code == 403  # but reports are not shown unchecked
        settings.OIDC_OP_TOKEN_ENDPOINT = token_endpoint
        assert session.get(report).status_code == 200


def test_the_post_attribute_changed_in_keycloak_changes_the_path_at_the_next_re_check(
    oidc_tenant: OidcTenant, settings: Any
) -> None:
    """The reconciler's ``post`` mapper passes the directory's attribute to the portal: the
    officer's post, its gaps and its path follow the attribute at the next session re-check."""
    from django.urls import reverse

    from tests.tenant_portal.learning import prepare_site
    from tests.tenant_portal.test_role_based import make_post

    prepare_site()
    make_post("bdo", {"en": "Block Development Officer"}, {"gem-procurement": 2})
    make_post("dho", {"en": "District Health Officer"}, {"active-listening": 3})
    user_id = oidc_tenant.create_user("mira.officer", attributes={"post": ["bdo"]})
    my_learning = f"{oidc_tenant.portal_url}{reverse('passbook')}"
    with browser_session() as session:
        session.headers["Accept-Language"] = "en"
        portal_sign_in(session, oidc_tenant, "mira.officer")
        page = session.get(my_learning).text
        assert "Your post: Block Development Officer (set by your directory)" in page
        assert "Procurement through GeM" in page and "Active listening" not in page

        update_user(oidc_tenant, user_id, attributes={"post": ["dho"]})
        # Within the interval the portal keeps what it has; once it has passed, it re-checks.
        assert "Block Development Officer" in session.get(my_learning).text
        set_portal(settings, session_recheck_seconds=0)
        page = session.get(my_learning).text
    assert "Your post: District Health Officer (set by your directory)" in page
    assert "Active listening" in page and "Procurement through GeM" not in page
    profile = get_user_model().objects.get(profile__subject=user_id).profile
    assert profile.post_claimed == "dho"
