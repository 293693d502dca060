"""Sign-in through the tenant's realm, against the real Keycloak and the live portal."""

from __future__ import annotations

import time
import uuid
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.identity.browser import browser_session, form_action, visible_text
from tests.tenant_portal.conftest import PASSWORD, OidcTenant

pytestmark = pytest.mark.django_db(transaction=True)


def portal_sign_in(session: httpx.Client, tenant: OidcTenant, username: str) -> httpx.Response:
    """Click "Sign in" on the portal, fill Keycloak's form, and land back on the portal."""
    login_page = session.get(f"{tenant.portal_url}/auth/authenticate/", follow_redirects=True)
    assert login_page.url.host == "127.0.0.1", "the portal sends the browser to Keycloak"
    return session.post(
        form_action(login_page.text),
        data={"username": username, "password": PASSWORD},
        follow_redirects=True,
    )


def groups_of(username_sub: str) -> set[str]:
    user = get_user_model().objects.get(profile__subject=username_sub)
    return set(user.groups.values_list("name", flat=True))


def test_sign_in_maps_roles_and_department(oidc_tenant: OidcTenant) -> None:
    user_id = oidc_tenant.create_user("asha.editor", "content_creator", department="health")
    with browser_session() as session:
        home = portal_sign_in(session, oidc_tenant, "asha.editor")
        assert home.status_code == 200 and home.url.host != "127.0.0.1"
        text = visible_text(home.text, limit=None)
        assert "Signed in as Sunita Devi" in text
        # The account, at the foot of the home page.
        assert "Department health Roles" in text and "content_creator" in text
    assert groups_of(user_id) == {"Editors"}
    user = get_user_model().objects.get(profile__subject=user_id)
    assert user.profile.department == "health"
    assert user.profile.email_verified is True  # what a credential may name (issue 21)
    assert not user.is_superuser and not user.is_staff


def test_a_learner_opening_the_admin_is_told_no_instead_of_looping(
    oidc_tenant: OidcTenant,
) -> None:
    oidc_tenant.create_user("meena.learner")
    with browser_session() as session:
        session.headers["Accept-Language"] = "en"
        portal_sign_in(session, oidc_tenant, "meena.learner")
        # Wagtail sends a user without admin rights to its login URL, our sign-in: that
        # answers 403 for a signed-in user instead of a round trip through Keycloak.
        admin = session.get(f"{oidc_tenant.portal_url}/admin/", follow_redirects=True)
        assert admin.status_code == 403
        assert admin.url.host != "127.0.0.1"  # never sent back to Keycloak
        assert "has no access to this page" in visible_text(admin.text)


def test_role_removed_in_keycloak_is_gone_at_next_sign_in(oidc_tenant: OidcTenant) -> None:
    user_id = oidc_tenant.create_user("ravi.publisher", "content_publisher", "mdo_admin")
    with browser_session() as session:
        portal_sign_in(session, oidc_tenant, "ravi.publisher")
    assert groups_of(user_id) == {"Publishers", "Department administrators"}
    oidc_tenant.revoke(user_id, "content_publisher")
    with browser_session() as session:
        portal_sign_in(session, oidc_tenant, "ravi.publisher")
    assert groups_of(user_id) == {"Department administrators"}


def test_backchannel_logout_ends_the_portal_session(oidc_tenant: OidcTenant) -> None:
    user_id = oidc_tenant.create_user("meena.learner")
    with browser_session() as session:
        portal_sign_in(session, oidc_tenant, "meena.learner")
        assert Session.objects.count() == 1
        # An administrator signs the user out in Keycloak; Keycloak tells the portal.
        oidc_tenant.api.post(f"/{oidc_tenant.tenant.code}/users/{user_id}/logout", {}, "logout")
        deadline = time.monotonic() + 10
        while Session.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not Session.objects.exists()
        page = session.get(f"{oidc_tenant.portal_url}/")
        assert "Signed in as" not in page.text and "Sign in" in page.text


def test_forged_logout_token_is_refused_and_nothing_changes(oidc_tenant: OidcTenant) -> None:
    oidc_tenant.create_user("kiran.learner")
    with browser_session() as session:
        portal_sign_in(session, oidc_tenant, "kiran.learner")
    forger = RSAKey.generate_key(2048, parameters={"kid": "forged"})
    claims = {
        "iss": oidc_tenant.issuer,
        "aud": "portal",
        "iat": int(time.time()),
        "jti": uuid.uuid4().hex,
        "sub": get_user_model().objects.get().profile.subject,
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    }
    forged = jwt.encode({"alg": "RS256", "kid": "forged"}, claims, forger)
    response = httpx.post(
        f"{oidc_tenant.portal_url}/auth/backchannel-logout/", data={"logout_token": forged}
    )
    assert response.status_code == 400
    assert "signature" in response.text
    assert Session.objects.count() == 1


def test_token_of_another_realm_is_refused_as_logout_token(oidc_tenant: OidcTenant) -> None:
    """A token minted by the hub's realm (another tenant's) cannot end this portal's sessions."""
    oidc_tenant.create_user("anil.learner")
    with browser_session() as session:
        portal_sign_in(session, oidc_tenant, "anil.learner")
    hub = oidc_tenant.hub.code
    token = httpx.post(
        f"{oidc_tenant.keycloak_url}/realms/{hub}/protocol/openid-connect/token",
        data={
            "grant_type": "client_credentials",
            "client_id": f"federation-{hub}",
            "client_secret": oidc_tenant.hub.federation_secret,
        },
    ).json()["access_token"]
    response = httpx.post(
        f"{oidc_tenant.portal_url}/auth/backchannel-logout/", data={"logout_token": token}
    )
    assert response.status_code == 400
    assert Session.objects.count() == 1


def test_tampered_state_lands_on_a_clear_error_and_creates_nobody(
    oidc_tenant: OidcTenant,
) -> None:
    with browser_session() as session:
        session.get(f"{oidc_tenant.portal_url}/auth/authenticate/")  # a real flow begins
        response = session.get(
            f"{oidc_tenant.portal_url}/auth/callback/",
            params={"code": "forged", "state": "not-the-state-we-sent"},
            follow_redirects=True,
        )
    assert response.status_code == 400
    assert "Sign-in failed" in response.text and "Nothing was changed" in response.text
    assert not get_user_model().objects.exists()


def start_flow(session: httpx.Client, tenant: OidcTenant) -> httpx.Response:
    """Click "Sign in" without following: the portal's redirect to Keycloak, with its state."""
    response = session.get(f"{tenant.portal_url}/auth/authenticate/")
    assert response.status_code == 302
    return response


def state_of(redirect: httpx.Response) -> str:
    return parse_qs(urlparse(redirect.headers["location"]).query)["state"][0]


def test_forged_or_foreign_code_with_a_valid_state_lands_on_the_failure_page(
    oidc_tenant: OidcTenant,
) -> None:
    """The state is ours, the code is not one Keycloak redeems for this flow: no 500."""
    oidc_tenant.create_user("gita.learner")
    callback = f"{oidc_tenant.portal_url}/auth/callback/"
    with browser_session() as session:
        forged = session.get(
            callback,
            params={"code": "forged", "state": state_of(start_flow(session, oidc_tenant))},
            follow_redirects=True,
        )
        # A real code from one flow presented with another flow's state (and PKCE verifier),
        # as a code stolen from another browser would be: Keycloak refuses to redeem it.
        first, second = start_flow(session, oidc_tenant), start_flow(session, oidc_tenant)
        login_page = session.get(first.headers["location"], follow_redirects=True)
        to_portal = session.post(
            form_action(login_page.text),
            data={"username": "gita.learner", "password": PASSWORD},
        )
        while not to_portal.headers["location"].startswith(callback):
            to_portal = session.get(to_portal.headers["location"])
        code = parse_qs(urlparse(to_portal.headers["location"]).query)["code"][0]
        foreign = session.get(
            callback, params={"code": code, "state": state_of(second)}, follow_redirects=True
        )
    for response in (forged, foreign):
        assert response.status_code == 400
        assert "Sign-in failed" in response.text and "Nothing was changed" in response.text
        assert "Traceback" not in response.text
    assert not get_user_model().objects.exists()
    assert not any("_auth_user_id" in s.get_decoded() for s in Session.objects.all())


def test_login_page_follows_the_portal_language_and_offers_the_hub(
    oidc_tenant: OidcTenant,
) -> None:
    with browser_session() as session:
        switched = session.post(
            f"{oidc_tenant.portal_url}/i18n/setlang/",
            data={"language": "hi", "next": "/"},  # CSRF-exempt: see tenant_portal/urls.py
        )
        assert switched.status_code == 302, switched.text[:300]
        page = session.get(f"{oidc_tenant.portal_url}/auth/authenticate/", follow_redirects=True)
    assert "ui_locales=hi" in str(page.history[0].headers["location"])
    assert 'lang="hi"' in page.text
    assert f"/broker/{oidc_tenant.hub.code}/login" in page.text


def test_hub_button_goes_straight_to_the_hub(oidc_tenant: OidcTenant) -> None:
    with browser_session() as session:
        page = session.get(
            f"{oidc_tenant.portal_url}/auth/authenticate/?idp=hub", follow_redirects=True
        )
    assert f"/realms/{oidc_tenant.hub.code}/" in str(page.url)
