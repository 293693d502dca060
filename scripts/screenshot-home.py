"""Take the home page pictures in docs/images/ from a running demo federation (issue 19).

Starts the example tenants (``tenants/``) with ``karmayogi up`` in a kit home of its own (the
downloads cache is shared, so Keycloak is not fetched again), then with Debian's Chromium driven
by Playwright:

- ``bihar-home-en.png``: Bihar's home page signed out, English chosen;
- ``bihar-home-signed-in-en.png``: the same page signed in as Bihar's demo ``learner``, after
  enrolling in the first course the home page features (so *Continue where you left off* has
  something to show).

``karmayogi down`` runs afterwards whatever happened, so no portal is left listening. Its
portals start at 127.0.9.2 (``KARMAYOGI_LOCAL_ADDRESS``), away from a ``make up`` of your own
(127.0.0.2) and the test suite's homes (127.0.2.2 upwards)::

    .venv/bin/python scripts/screenshot-home.py

No password appears in a picture or in this script's output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "images"
KARMAYOGI = Path(sys.executable).with_name("karmayogi")
TENANT = "bihar"
ADDRESS = "127.0.9.2"  # where this home's portals start (docs/decisions.md, "Local network")
VIEWPORT = {"width": 1280, "height": 800}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def karmayogi(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    folder = ["--tenants", str(REPO / "tenants")] if args[0] in ("up", "status") else []
    return subprocess.run(
        [str(KARMAYOGI), *args, *folder],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def portal_url(env: dict[str, str]) -> str:
    done = karmayogi(env, "status", "--json")
    status = json.loads(done.stdout)
    return str(next(t["portal_url"] for t in status["tenants"] if t["code"] == TENANT))


def sign_in(page: Page, portal: str, username: str, password: str) -> None:
    page.goto(f"{portal}/")
    page.locator('a[href="/auth/authenticate/"]').click()
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.locator("#kc-login").click()
    page.locator(".signed-in-as").wait_for()


def shoot(portal: str, password: str) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("screenshot-home: Chromium is missing; run scripts/browser-deps.sh first")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT, locale="en-IN")
            page = context.new_page()
            page.goto(f"{portal}/")
            page.screenshot(path=IMAGES / "bihar-home-en.png", full_page=True)
            context.close()

            context = browser.new_context(viewport=VIEWPORT, locale="en-IN")
            page = context.new_page()
            sign_in(page, portal, "learner", password)
            page.locator("#featured-heading ~ ul a").first.click()
            enrol = page.locator("form[action$='/enrol/'] button")
            if enrol.count():
                enrol.first.click()
            page.goto(f"{portal}/")
            page.screenshot(path=IMAGES / "bihar-home-signed-in-en.png", full_page=True)
            context.close()
        finally:
            browser.close()


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="karmayogi-screenshots-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KARMAYOGI_")}
    cache = os.environ.get("KARMAYOGI_CACHE") or str(Path.home() / ".cache" / "karmayogi")
    env.update(
        {"KARMAYOGI_HOME": str(home), "KARMAYOGI_CACHE": cache, "KARMAYOGI_LOCAL_ADDRESS": ADDRESS}
    )
    try:
        print("screenshot-home: starting the federation (karmayogi up)…", flush=True)
        up = karmayogi(env, "up")
        if up.returncode != 0:
            print(up.stderr[-2000:], file=sys.stderr)
            return 1
        accounts = json.loads((home / "secrets" / "demo-accounts.json").read_text("utf-8"))
        shoot(portal_url(env), str(accounts[TENANT]["learner"]))
        print(f"screenshot-home: pictures written to {IMAGES.relative_to(REPO)}/")
        return 0
    finally:
        down = karmayogi(env, "down")
        print(f"screenshot-home: karmayogi down exited {down.returncode}", flush=True)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
