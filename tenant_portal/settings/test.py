"""The test suite: PostgreSQL started by the test session, a tenant with three languages.

A complete test environment is supplied while the contract reads it (values already in the
environment win). The test session points DATABASES at its own PostgreSQL (tests/conftest.py).
The tenant speaks English, Hindi and Urdu, so left-to-right, Devanagari and right-to-left paths
all run.
"""

from __future__ import annotations

import json
import os

TEST_ENVIRONMENT = {
    "KARMAYOGI_TENANT": "dev",
    "KARMAYOGI_SITE_NAME": "Karmayogi",
    "KARMAYOGI_PORTAL_URL": "http://127.0.0.1:8000",
    "KARMAYOGI_LANGUAGES": json.dumps(
        [
            {"code": "en", "name": "English", "name_local": "English", "bidi": False},
            {"code": "hi", "name": "Hindi", "name_local": "हिन्दी", "bidi": False},
            {"code": "ur", "name": "Urdu", "name_local": "اردو", "bidi": True},
        ]
    ),
    "DJANGO_SECRET_KEY": "tests-only-not-a-secret",
    "DJANGO_ALLOWED_HOSTS": "*",
}
# Supplied only while the contract reads it: subprocesses the tests start get a clean
# environment, not the test tenant's.
_supplied = [name for name in TEST_ENVIRONMENT if name not in os.environ]
os.environ.update({name: TEST_ENVIRONMENT[name] for name in _supplied})
try:
    from tenant_portal.settings.base import *  # noqa: F403
    from tenant_portal.settings.base import MIDDLEWARE, PORTAL
finally:
    for _name in _supplied:
        del os.environ[_name]

DEBUG = False
SECRET_KEY = PORTAL.secret_key or "tests-only-not-a-secret"
ALLOWED_HOSTS = list(PORTAL.allowed_hosts)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# The live server serves static files itself; WhiteNoise would look for collected files.
MIDDLEWARE = [m for m in MIDDLEWARE if m != "whitenoise.middleware.WhiteNoiseMiddleware"]
# PostgreSQL from the start, so apps that look at the database vendor when Django starts (the
# search backend does) see the one the tests use; the session fixture fills in the server it
# started (tests/conftest.py) before any test touches the database.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "karmayogi",
        "HOST": "127.0.0.1",
        "PORT": "9",
        "USER": "karmayogi",
        "PASSWORD": "",
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": True,
    }
}
# The live server is one process: a per-process cache is shared by all its threads.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# ... so sessions can be read from it, as in a deployment with a shared cache.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
KARMAYOGI_LEARNER_STATE_CACHE = True
