"""The embedded default: one portal per tenant on a loopback address, SQLite, HTTP.

A missing secret key is generated once and kept beside the database, so sessions survive
restarts; production refuses to start without its secrets instead.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from tenant_portal.settings.base import *  # noqa: F403
from tenant_portal.settings.base import PORTAL

DEBUG = PORTAL.debug


def _secret_key(data_dir: Path) -> str:
    if PORTAL.secret_key:
        return PORTAL.secret_key
    path = data_dir / "secret-key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(secrets.token_urlsafe(50), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


SECRET_KEY = _secret_key(PORTAL.data_dir)
ALLOWED_HOSTS = list(PORTAL.allowed_hosts)
CSRF_TRUSTED_ORIGINS = [PORTAL.portal_url]
