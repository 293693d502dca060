"""Chromium that trusts the session's CA for real and resolves the rig's names.

Chromium on Linux takes locally added trust anchors from the NSS database in
``$HOME/.pki/nssdb`` (its built-in root store ignores the machine's ``/etc/ssl``), so the
rig makes a private ``HOME`` with a database trusting the CA (``certutil`` from Debian's
``libnss3-tools``) and launches Chromium with that ``HOME``. Pages load with certificate
checks on: no ``ignore_https_errors``, no ``--ignore-certificate-errors``; a certificate for the
wrong name or from another CA fails the page load with ``net::ERR_CERT_...``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.rig.ca import CertificateAuthority
from tests.rig.errors import RigError
from tests.rig.names import NameMap

CHROMIUM = "/usr/bin/chromium"
# Every Chromium the suite launches runs with these, for the reasons DESIGN §9 gives.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
NSS_NICKNAME = "karmayogi-rig-ca"


def nss_home(ca: CertificateAuthority, folder: Path) -> Path:
    """A ``HOME`` folder whose NSS database trusts ``ca`` to identify web sites; returns it.

    Made once per folder (a second call finds the database and only re-adds the CA).
    """
    certutil = shutil.which("certutil")
    if certutil is None:
        raise RigError("certutil is missing; install it with `make system-deps` (libnss3-tools)")
    database = folder / ".pki" / "nssdb"
    database.mkdir(parents=True, exist_ok=True)
    where = f"sql:{database}"
    if not (database / "cert9.db").is_file():
        _run([certutil, "-d", where, "-N", "--empty-password"])
    # "C,,": a trusted CA for TLS servers, nothing for mail or code signing.
    _run([certutil, "-d", where, "-A", "-t", "C,,", "-n", NSS_NICKNAME, "-i", str(ca.bundle_path)])
    return folder


def launch_options(names: NameMap, home: Path, *, args: tuple[str, ...] = ()) -> dict[str, Any]:
    """Keyword arguments for Playwright's ``chromium.launch``: Debian's Chromium with the name
    map's resolver rules, and ``HOME`` pointing at a folder made by ``nss_home``."""
    return {
        "executable_path": CHROMIUM,
        "args": [*CHROMIUM_ARGS, *names.chromium_args(), *args],
        "env": {**os.environ, "HOME": str(home)},
    }


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RigError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")


def sign_in_at_keycloak(page: Any, username: str, password: str, portal_url: str) -> str:
    """Fill Keycloak's login form on ``page`` (a Playwright page showing it), and wait until
    the portal at ``portal_url`` shows whom it signed in; returns that text."""
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.locator("#kc-login").click()
    page.wait_for_url(re.compile(rf"^{re.escape(portal_url)}/"))
    page.locator(".signed-in-as").wait_for()
    return str(page.locator(".signed-in-as").inner_text())
