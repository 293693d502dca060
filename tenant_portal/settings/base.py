"""Settings every environment shares, derived from the portal's settings contract.

The deployment tells the portal what it is through the settings in
``portal-settings.schema.json`` (the environment, the JSON file ``KARMAYOGI_ENV_FILE`` names,
and ``<NAME>_FILE`` for secrets); :func:`~tenant_portal.settings.contract.load_settings` reads
them once into ``PORTAL``, frozen dataclasses the apps read (``settings.PORTAL.federation``).
Only this package reads the environment; the Django settings below are derived from ``PORTAL``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import environ
from django.conf.locale import LANG_INFO

from tenant_portal.settings.contract import Media, PortalSettings, SettingsError, load_settings

PACKAGE_DIR = Path(__file__).resolve().parent.parent

PORTAL: PortalSettings = load_settings(os.environ)
DATA_DIR = PORTAL.data_dir

# --- languages -----------------------------------------------------------------------------
# Django lacks several scheduled Indian languages (gu, or, as, sa, ks, kok, mai, mni, sat, doi,
# brx, sd), and Wagtail's Locale.language_name raises KeyError until LANG_INFO knows them.
for _lang in PORTAL.languages:
    LANG_INFO.setdefault(
        _lang.code,
        {
            "bidi": _lang.bidi,
            "code": _lang.code,
            "name": _lang.name,
            "name_local": _lang.name_local,
        },
    )
LANGUAGES = [(lang.code, lang.name_local) for lang in PORTAL.languages]
LANGUAGE_CODE = LANGUAGES[0][0]
LANGUAGES_BIDI = [lang.code for lang in PORTAL.languages if lang.bidi]
USE_I18N = True
USE_TZ = True
TIME_ZONE = PORTAL.time_zone
LOCALE_PATHS = [PACKAGE_DIR / "locale"]
WAGTAIL_I18N_ENABLED = True
WAGTAIL_CONTENT_LANGUAGES = LANGUAGES

# --- sign-in through the tenant's realm (mozilla-django-oidc's own settings) ---------------
_endpoints = PORTAL.oidc.endpoints
OIDC_RP_CLIENT_ID = PORTAL.oidc.client_id
OIDC_RP_CLIENT_SECRET = PORTAL.oidc.client_secret
OIDC_OP_AUTHORIZATION_ENDPOINT = f"{_endpoints}/auth"
OIDC_OP_TOKEN_ENDPOINT = f"{_endpoints}/token"
OIDC_OP_USER_ENDPOINT = f"{_endpoints}/userinfo"
OIDC_OP_JWKS_ENDPOINT = f"{_endpoints}/certs"
OIDC_OP_END_SESSION_ENDPOINT = f"{_endpoints}/logout"
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_RP_SCOPES = "openid profile email"
OIDC_USE_PKCE = True
OIDC_PKCE_CODE_CHALLENGE_METHOD = "S256"
OIDC_STORE_ID_TOKEN = True
OIDC_OP_LOGOUT_URL_METHOD = "tenant_portal.accounts.views.keycloak_logout_url"
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_authentication_callback"
OIDC_CALLBACK_CLASS = "tenant_portal.accounts.views.CallbackView"
OIDC_AUTHENTICATE_CLASS = "tenant_portal.accounts.views.AuthenticateView"
LOGIN_URL = "oidc_authentication_init"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"
LOGIN_REDIRECT_URL_FAILURE = "/auth/failed/"
AUTHENTICATION_BACKENDS = ["tenant_portal.accounts.backends.KeycloakBackend"]

# --- Django and Wagtail --------------------------------------------------------------------
INSTALLED_APPS = [
    "tenant_portal.core",
    "tenant_portal.accounts",
    "tenant_portal.branding",
    "tenant_portal.competencies",
    "tenant_portal.catalogue",
    "tenant_portal.learning",
    "tenant_portal.federation",
    "tenant_portal.xapi",
    "tenant_portal.home",
    "wagtail.contrib.settings",
    "wagtail.contrib.routable_page",
    "wagtail.contrib.simple_translation",
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail.locales",
    "wagtail",
    "modelcluster",
    "taggit",
    "mozilla_django_oidc",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    # Before host checks and HTTPS redirects: probes call the process at its own address.
    "tenant_portal.core.probes.LivenessProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Outside the page cache and every middleware that answers early, so every response, a
    # cached page too, gets the same headers (CSP, Permissions-Policy, X-Frame-Options).
    "tenant_portal.core.security_headers.SecurityHeadersMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tenant_portal.core.upload_limit.UploadLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "tenant_portal.core.page_cache.AnonymousPageCacheMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The session re-check: the realm session and roles behind a signed-in user, at Keycloak.
    "tenant_portal.accounts.middleware.RealmSessionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # A write that waits out SQLite's lock timeout answers 503 with Retry-After, not 500.
    "tenant_portal.core.db_busy.DatabaseBusyMiddleware",
    "wagtail.contrib.redirects.middleware.RedirectMiddleware",
]

ROOT_URLCONF = "tenant_portal.urls"
WSGI_APPLICATION = "tenant_portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [PACKAGE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "wagtail.contrib.settings.context_processors.settings",
                "tenant_portal.core.context_processors.portal",
            ]
        },
    }
]


def _parsed(name: str, parse: Callable[[str], Any], url: str) -> dict[str, Any]:
    """``url`` parsed by django-environ; the URL may hold a password, so it is never shown."""
    try:
        return dict(parse(url))
    except Exception as exc:
        raise SettingsError(f"{name}: cannot be parsed ({exc.__class__.__name__})") from None


DATABASES = {"default": _parsed("DATABASE_URL", environ.Env.db_url_config, PORTAL.database_url)}
DATABASES["default"]["CONN_MAX_AGE"] = PORTAL.conn_max_age or 0
if PORTAL.database_url_file and DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # A rotated password reaches each new connection (tenant_portal/database).
    DATABASES["default"]["ENGINE"] = "tenant_portal.database"
    DATABASES["default"]["URL_FILE"] = PORTAL.database_url_file
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# One cache all of a portal's workers share: anonymous pages and their generation
# (tenant_portal.core.page_cache). A folder on the embedded default; production points
# KARMAYOGI_CACHE_URL at a cache every replica reaches (redis://…, or dbcache://…).
CACHES = {"default": _parsed("KARMAYOGI_CACHE_URL", environ.Env.cache_url_config, PORTAL.cache_url)}
CACHES["default"].setdefault("OPTIONS", {}).setdefault("MAX_ENTRIES", 5000)
# Sessions are read from that cache, and written through to the database: a signed-in page
# then asks the database nothing for its session. Ending a session (sign-out, the re-check,
# Keycloak's back-channel logout) deletes it from both at once, so every worker sees it end.
# A per-process cache (locmemcache) is not shared by the workers: there sessions stay in the
# database alone, and each learner's state in a course (tenant_portal.learning.state) is read
# afresh on every page.
_CACHE_SHARED = not CACHES["default"]["BACKEND"].endswith(".LocMemCache")
SESSION_ENGINE = (
    "django.contrib.sessions.backends.cached_db"
    if _CACHE_SHARED
    else "django.contrib.sessions.backends.db"
)
KARMAYOGI_LEARNER_STATE_CACHE = _CACHE_SHARED
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS: list[dict[str, str]] = []  # passwords live in Keycloak only

STATIC_URL = "/static/"
# Portals running the same code can share one collected copy (the local target does).
STATIC_ROOT = PORTAL.static_root
STATICFILES_DIRS = [PACKAGE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = PORTAL.media.root


def media_storage(media: Media) -> dict[str, Any]:
    """Uploaded media on a filesystem path, or in an S3-compatible bucket through
    django-storages; without keys in the settings boto3 finds its own (instance role, ...)."""
    if media.s3 is None:
        return {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    options: dict[str, Any] = {
        "bucket_name": media.s3.bucket,
        # Private objects behind signed URLs; Wagtail's renditions must never overwrite.
        "default_acl": None,
        "querystring_auth": True,
        "file_overwrite": False,
    }
    if media.s3.endpoint_url:
        options["endpoint_url"] = media.s3.endpoint_url
    if media.s3.region:
        options["region_name"] = media.s3.region
    if media.s3.access_key_id:
        options["access_key"] = media.s3.access_key_id
        options["secret_key"] = media.s3.secret_access_key
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}


STORAGES = {
    "default": media_storage(PORTAL.media),
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
WAGTAILIMAGES_MAX_UPLOAD_SIZE = 20 * 1024 * 1024

SESSION_COOKIE_NAME = f"karmayogi_{PORTAL.tenant.replace('-', '_')}_session"
CSRF_COOKIE_NAME = f"karmayogi_{PORTAL.tenant.replace('-', '_')}_csrftoken"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"

WAGTAIL_SITE_NAME = PORTAL.site_name
WAGTAILADMIN_BASE_URL = PORTAL.portal_url
WAGTAILADMIN_LOGIN_URL = "oidc_authentication_init"
WAGTAIL_PASSWORD_MANAGEMENT_ENABLED = False
WAGTAIL_PASSWORD_RESET_ENABLED = False
WAGTAILUSERS_PASSWORD_ENABLED = False
# No avatars from an outside service: Wagtail would send a hash of each user's e-mail there.
WAGTAIL_GRAVATAR_PROVIDER_URL = None
WAGTAILSEARCH_BACKENDS = {"default": {"BACKEND": "wagtail.search.backends.database"}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": PORTAL.log_level},
    # Every background task logs its start and end at INFO, WeasyPrint each step of every
    # certificate: noise in an operator's log.
    "loggers": {
        name: {"level": "WARNING"}
        for name in ("django.tasks", "django_tasks", "weasyprint", "fontTools")
    },
}
