"""The embedded default: one portal per tenant on a loopback address, SQLite, HTTP.

A missing secret key is generated once and kept beside the database, so sessions survive
restarts; production refuses to start without its secrets instead.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from tenant_portal.settings.base import *  # noqa: F403
from tenant_portal.settings.base import DATABASES, PORTAL

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

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite has one writer at a time. A transaction that starts as a reader and then writes
    # (every get_or_create) fails at once with "database is locked" when another writer got
    # there first; IMMEDIATE takes the write lock at BEGIN, so concurrent writes queue for it
    # (up to `timeout` seconds) instead. WAL lets readers go on while one writes; NORMAL
    # sync is safe with WAL. A wait beyond the timeout is a 503 (core.db_busy), never a 500.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL",
        }
    )
ALLOWED_HOSTS = list(PORTAL.allowed_hosts)
CSRF_TRUSTED_ORIGINS = [PORTAL.portal_url]
# Uploads (course images, documents) are the tenant's data: private to the user running the
# portal, like everything else under the kit's home.
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
