"""A realm's mail against a local SMTP sink (aiosmtpd, started for this module): a Hindi-
speaking officer who forgot the password receives the reset e-mail in Hindi, and following
its link sets a new password. The SMTP password reaches Keycloak only through its vault."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import html
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import urljoin

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from playwright.sync_api import Page

from identity.desired import Federation, MailServer, TenantRealm, VaultSecret
from identity.reconciler import Reconciler
from identity.themes import LoginTheme, remove_theme, theme_name, write_theme
from identity.vault import FileVault
from infra.net import free_port
from infra.targets.local.keycloak import LocalKeycloak
from tests.identity.browser import (
    FlowError,
    authorization_request,
    browser_session,
    form_action,
    sign_in,
)
from tests.identity.test_reconciler import PASSWORD, admin_api, create_user, make_tenant, portal
from tests.tenant_portal.browser import chromium_fixture, page_fixture  # noqa: F401

SMTP_USER = "keycloak"
NEW_PASSWORD = "नया-पासवर्ड-2026-safe"
LOGO = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"/>'


@dataclass
class Sink:
    """Messages the SMTP server accepted, and the passwords it was offered."""

    port: int
    password: str = field(repr=False)
    messages: list[EmailMessage] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.arrived:
            self.messages.append(message)  # type: ignore[arg-type]
            self.arrived.notify_all()
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == SMTP_USER.encode()
            and data.password == self.password.encode()
        )
        return AuthResult(success=ok)

    def next_message(self, to: str, timeout: float = 60) -> EmailMessage:
        def for_them() -> EmailMessage | None:
            return next((m for m in self.messages if to in str(m["To"])), None)

        with self.arrived:
            found = self.arrived.wait_for(for_them, timeout)
        assert found is not None, f"no e-mail to {to} arrived"
        return found


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    handler = Sink(free_port(), uuid.uuid4().hex)
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=handler.port,
        authenticator=handler.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    yield handler
    controller.stop()


@pytest.fixture
def tenant(keycloak: LocalKeycloak, sink: Sink) -> Iterator[TenantRealm]:
    code = f"mail-{uuid.uuid4().hex[:8]}"
    theme = LoginTheme(
        name=theme_name(code),
        display_name="Bihar Karmayogi",
        logo=LOGO,
        logo_suffix=".svg",
        primary="#8b1e3f",
        accent="#f2a900",
        languages=("hi", "en"),
    )
    themes = keycloak.paths.home.themes
    write_theme(theme, themes)
    realm = dataclasses.replace(
        make_tenant(code),
        languages=("hi", "en"),
        login_theme=theme.name,
        mail=MailServer(
            host="127.0.0.1",
            port=sink.port,
            from_address="karmayogi@bihar.example",
            from_name="Bihar Karmayogi",
            security="none",
            reply_to="helpdesk@bihar.example",
            user=SMTP_USER,
            password="${vault.smtp-password}",
        ),
        vault=(VaultSecret("smtp-password", sink.password),),
    )
    yield realm
    api = admin_api(keycloak)
    if api.get(f"/{code}", "cleanup") is not None:
        api.delete(f"/{code}", "cleanup")
    FileVault(keycloak.paths.vault).remove_realm(code)
    remove_theme(theme.name, themes)


def reconciler(keycloak: LocalKeycloak, tenant: TenantRealm) -> Reconciler:
    return Reconciler(
        admin_api(keycloak),
        Federation(keycloak.url, (tenant,)),
        vault=FileVault(keycloak.paths.vault),
    )


def test_forgotten_password_is_reset_through_a_hindi_email(
    keycloak: LocalKeycloak, tenant: TenantRealm, sink: Sink, page: Page
) -> None:
    reconciler(keycloak, tenant).apply()
    api = admin_api(keycloak)
    create_user(api, tenant.code, "meena.devi", attributes={"locale": ["hi"]})
    client = portal(keycloak, tenant)
    address = "meena.devi@example.org"

    with browser_session() as browser:
        # "Forgot password?" on the login page, then the officer's username.
        login = _open(browser, client)
        link = re.search(r'href="([^"]*login-actions/reset-credentials[^"]*)"', login.text)
        assert link, "no forgot-password link on the login page"
        form = browser.get(urljoin(str(login.url), html.unescape(link.group(1))))
        sent = browser.post(form_action(form.text), data={"username": "meena.devi"})
        assert sent.status_code in (200, 302, 303)

        message = sink.next_message(address)
        assert message["Subject"] == "पासवर्ड रीसेट करें"
        assert "Bihar Karmayogi" in str(message["From"])
        assert "karmayogi@bihar.example" in str(message["From"])
        assert "helpdesk@bihar.example" in str(message["Reply-To"])
        text = message.get_body(("plain",))
        assert text is not None
        body = text.get_content()
        assert "किसी ने अभी आपके" in body
        reset = re.search(r"(http://\S+/login-actions/action-token\S+)", body)
        assert reset, body

    # The officer opens the link in Chromium: a form for the new password, in Hindi.
    callback = client.redirect_uri.rsplit("/auth/", 1)[0]
    page.route(f"{callback}/**", lambda route: route.fulfill(body="the portal"))
    page.goto(reset.group(1))
    page.fill("#password-new", NEW_PASSWORD)
    page.fill("#password-confirm", NEW_PASSWORD)
    assert "पासवर्ड" in page.inner_text("body")
    page.locator("form [type=submit]").first.click()
    page.wait_for_load_state()
    assert "password-new" not in page.content()  # accepted, not shown again with an error

    assert sign_in(client, "meena.devi", NEW_PASSWORD)["access_token"]
    with pytest.raises(FlowError):
        sign_in(client, "meena.devi", PASSWORD)


def test_mail_settings_are_drift_checked_with_the_password_read_from_the_vault(
    keycloak: LocalKeycloak, tenant: TenantRealm
) -> None:
    reconciler(keycloak, tenant).apply()
    api = admin_api(keycloak)
    realm = api.get(f"/{tenant.code}", "realm")
    assert realm["smtpServer"]["password"] == "${vault.smtp-password}"
    assert realm["emailTheme"] == tenant.login_theme
    api.put(
        f"/{tenant.code}",
        {"smtpServer": {**realm["smtpServer"], "host": "smtp.elsewhere.example"}},
        "tamper",
    )

    changes = reconciler(keycloak, tenant).plan()

    assert [c.describe() for c in changes] == [
        f"~ {tenant.code}: realm {tenant.code} (update)\n"
        "    smtpServer.host: 'smtp.elsewhere.example' -> '127.0.0.1'"
    ]
    reconciler(keycloak, tenant).apply()
    assert reconciler(keycloak, tenant).plan() == []


def _open(browser: Any, client: Any) -> Any:
    url, params = authorization_request(client)
    return _follow(browser, browser.get(url, params=params))


def _follow(browser: Any, response: Any) -> Any:
    while response.status_code in (302, 303):
        response = browser.get(urljoin(str(response.url), response.headers["Location"]))
    return response
