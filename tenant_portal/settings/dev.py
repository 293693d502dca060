"""The embedded default: one portal per tenant on a loopback address, SQLite, HTTP.

A missing secret key is generated once and kept beside the database, so sessions survive
restarts; production refuses to start without its secrets instead.
"""

from __future__ import annotations

import secrets

from tenant_portal.settings.base import *  # noqa: F403
from tenant_portal.settings.base import DATA_DIR, PORTAL_URL, env

DEBUG = env.bool("DJANGO_DEBUG", default=False)


def _secret_key() -> str:
    if env.str("DJANGO_SECRET_KEY", default=""):
        return str(env.str("DJANGO_SECRET_KEY"))
    path = DATA_DIR / "secret-key"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(secrets.token_urlsafe(50), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


SECRET_KEY = _secret_key()
_host = PORTAL_URL.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[_host, "localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = [PORTAL_URL]
