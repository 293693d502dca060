"""Debian's Chromium driven by Playwright, with axe-core checking pages as a person sees them.

``scripts/browser-deps.sh`` installs Chromium, the Noto fonts and the pinned axe-core (only
what is missing); Playwright's own browser downloads are never used (DESIGN §7, §9).

The fixtures are ``chromium`` and ``page``; a test module imports their functions to use them:
``from tests.tenant_portal.browser import chromium_fixture, page_fixture  # noqa: F401``
(named apart from the fixtures, so a test's ``page`` argument does not shadow an import).
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.rig.chromium import CHROMIUM, CHROMIUM_ARGS

REPO = Path(__file__).resolve().parents[2]
WCAG_21_AA = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
BLOCKING_IMPACTS = frozenset({"serious", "critical"})
# Long enough for a cold Keycloak page, short enough that a wrong wait fails the test quickly.
TIMEOUT_MS = 15_000
# Every address but loopback: the tests reach nothing outside this machine (Wagtail's admin,
# for one, asks Gravatar for avatars).
OFF_MACHINE = re.compile(r"^https?://(?!(127\.\d+\.\d+\.\d+|localhost|\[::1\])[:/])")


@functools.cache
def axe_script() -> Path:
    """The pinned ``axe.min.js``, after making sure Chromium and the fonts are installed too."""
    script = REPO / "scripts" / "browser-deps.sh"
    done = subprocess.run([str(script)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"{script.name} failed; the browser tests need its packages:\n{done.stderr}")
    path = Path(done.stdout.strip().splitlines()[-1])
    if not path.is_file():
        pytest.fail(f"{script.name} named {path}, which does not exist")
    return path


@functools.cache
def axe_version() -> str:
    package = json.loads((axe_script().parent / "package.json").read_text(encoding="utf-8"))
    return str(package["version"])


@pytest.fixture(scope="module", name="chromium")
def chromium_fixture() -> Iterator[Browser]:
    """One headless Chromium for the test module.

    Module-scoped, not session-scoped: while Playwright's sync driver runs, this thread has a
    running asyncio loop, and Django refuses ORM calls from such a thread. The flag that lets
    it is set exactly while the browser lives, so tests in other modules keep Django's check.
    """
    axe_script()
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(name="page")
def page_fixture(chromium: Browser) -> Iterator[Page]:
    """A page in a fresh context: no cookies, English as the browser's language, loopback only."""
    context = chromium.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    context.route(OFF_MACHINE, lambda route: route.abort("blockedbyclient"))
    try:
        yield context.new_page()
    finally:
        context.close()


def axe_violations(
    page: Page,
    tags: Iterable[str] = WCAG_21_AA,
    *,
    exclude: Iterable[str] = (),
    disable: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """The serious and critical violations axe-core finds on the page as it is now.

    ``exclude`` takes CSS selectors axe should not look into and ``disable`` rule ids to skip;
    each use needs a comment saying why the finding is not ours to fix.
    """
    # Pages carrying Wagtail's userbar already have an axe of Wagtail's own version: replace it.
    loaded = "typeof window.axe === 'object' ? window.axe.version : null"
    if page.evaluate(loaded) != axe_version():
        # Evaluated, not added as a <script>: the portal's Content-Security-Policy refuses
        # inline scripts, which add_script_tag writes; the DevTools protocol is not subject to it.
        page.evaluate(axe_script().read_text(encoding="utf-8"))
        assert page.evaluate(loaded) == axe_version(), "the pinned axe-core did not load"
    options = {
        "runOnly": {"type": "tag", "values": list(tags)},
        "resultTypes": ["violations"],
        "rules": {rule: {"enabled": False} for rule in disable},
    }
    context = {"exclude": [[selector] for selector in exclude]}
    result = page.evaluate(
        "([context, options]) => axe.run(context.exclude.length ? context : document, options)",
        [context, options],
    )
    return [v for v in result["violations"] if v["impact"] in BLOCKING_IMPACTS]


def describe(violations: Iterable[dict[str, Any]]) -> str:
    """One line per violation and element: rule, impact, where, and what to do."""
    lines = []
    for violation in violations:
        for node in violation["nodes"]:
            where = ", ".join(map(str, node["target"]))
            why = " ".join(str(node.get("failureSummary", "")).split())
            lines.append(
                f"{violation['id']} ({violation['impact']}) at {where}: {violation['help']} [{why}]"
            )
    return "\n".join(lines)


def open_sign_in(page: Page, portal_url: str) -> None:
    """From the portal's home, click "Sign in" (in any language) and wait for Keycloak's form."""
    page.goto(f"{portal_url}/")
    page.locator('a[href="/auth/authenticate/"]').click()
    page.locator("#kc-form-login").wait_for()


def submit_login_form(page: Page, username: str, password: str) -> None:
    """Fill Keycloak's login form on the current page and submit it."""
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.locator("#kc-login").click()


def sign_in(page: Page, portal_url: str, username: str, password: str) -> None:
    """Sign in through the portal's button and Keycloak's form; wait to be back on the portal."""
    open_sign_in(page, portal_url)
    submit_login_form(page, username, password)
    page.wait_for_url(re.compile(rf"^{re.escape(portal_url)}/"))
    page.locator(".signed-in-as").wait_for()


def switch_language(page: Page, code: str) -> None:
    """Choose ``code`` in the portal's language switcher and submit it."""
    page.locator("#language-select").select_option(code)
    with page.expect_navigation():
        page.locator("form.language-switcher button[type=submit]").click()
