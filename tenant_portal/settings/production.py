"""Production: PostgreSQL with persistent connections, HTTPS only, secrets required.

The contract (``portal-settings.schema.json``) holds what production needs when
``DJANGO_SETTINGS_MODULE`` names this module: its secrets, a PostgreSQL ``DATABASE_URL``, the
realm's issuer, and a media store (a path or an S3 bucket); a missing one stops the start with
one line naming it. Passes ``manage.py check --deploy --fail-level WARNING``.
"""

from __future__ import annotations

import os

from tenant_portal.settings.base import *  # noqa: F403
from tenant_portal.settings.base import DATABASES, PORTAL
from tenant_portal.settings.contract import PRODUCTION_MODULE, SettingsError, load_settings

if PORTAL.settings_module != PRODUCTION_MODULE:
    # A site's own settings module built on this one (DJANGO_SETTINGS_MODULE names that one):
    # the contract holds it to what production needs all the same.
    load_settings({**os.environ, "DJANGO_SETTINGS_MODULE": PRODUCTION_MODULE})
if PORTAL.secret_key is None:  # the contract requires it; this says so to the type checker
    raise SettingsError("DJANGO_SECRET_KEY: required setting is missing (production needs it)")

DEBUG = False
SECRET_KEY = PORTAL.secret_key
ALLOWED_HOSTS = list(PORTAL.allowed_hosts)
CSRF_TRUSTED_ORIGINS = [PORTAL.portal_url]
# Measured here: without persistent connections PostgreSQL halved the throughput of pages that
# query it (DESIGN §5). Health checks drop a connection the server closed before reusing it.
DATABASES["default"]["CONN_MAX_AGE"] = 600 if PORTAL.conn_max_age is None else PORTAL.conn_max_age
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# TLS ends at the proxy in front (nginx, the ingress, the ALB), which says so in this header.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = PORTAL.ssl_redirect
SECURE_HSTS_SECONDS = 31536000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
# Cookies stay host-only (no SESSION_COOKIE_DOMAIN): tenants never share a session.
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
LANGUAGE_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
