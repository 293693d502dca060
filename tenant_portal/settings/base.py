"""Settings every environment shares; values come from the rendered environment.

Layers: these defaults, then the tenant's rendered env file (``KARMAYOGI_ENV_FILE``), then the
process environment. Only this package reads the environment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.conf.locale import LANG_INFO

PACKAGE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if os.environ.get("KARMAYOGI_ENV_FILE"):
    # The kit renders a JSON object (values hold quotes and non-ASCII names that .env quoting
    # mangles). Values already in the process environment win over the file.
    with open(os.environ["KARMAYOGI_ENV_FILE"], encoding="utf-8") as _file:
        for _key, _value in json.load(_file).items():
            os.environ.setdefault(_key, str(_value))

TENANT_CODE = env.str("KARMAYOGI_TENANT", default="dev")
TENANT_TYPE = env.str("KARMAYOGI_TENANT_TYPE", default="state")
SITE_NAME = env.str("KARMAYOGI_SITE_NAME", default="Karmayogi")
# The tenant's public hostname: the IRIs of the courses it originates are minted on it
# (https://<domain>/courses/<uuid>) and never change, wherever the portal happens to run.
TENANT_DOMAIN = env.str("KARMAYOGI_DOMAIN", default="learn.example.org")
PORTAL_URL = env.str("KARMAYOGI_PORTAL_URL", default="http://127.0.0.1:8000").rstrip("/")
DATA_DIR = Path(env.str("KARMAYOGI_DATA_DIR", default=str(PACKAGE_DIR.parent / ".portal-data")))

# --- languages -----------------------------------------------------------------------------
# The rendered env carries the tenant's languages with what Django needs to know of them:
# [{"code", "name", "name_local", "bidi"}], first the default. Django lacks several
# scheduled Indian languages (gu, or, as, sa, ks, kok, mai, mni, sat, doi, brx, sd), and
# Wagtail's Locale.language_name raises KeyError until LANG_INFO knows them.
_languages = json.loads(
    env.str(
        "KARMAYOGI_LANGUAGES",
        default='[{"code": "en", "name": "English", "name_local": "English", "bidi": false}]',
    )
)
for _lang in _languages:
    LANG_INFO.setdefault(
        _lang["code"],
        {
            "bidi": bool(_lang["bidi"]),
            "code": _lang["code"],
            "name": _lang["name"],
            "name_local": _lang["name_local"],
        },
    )
LANGUAGES = [(lang["code"], lang["name_local"]) for lang in _languages]
LANGUAGE_CODE = LANGUAGES[0][0]
LANGUAGES_BIDI = [lang["code"] for lang in _languages if lang["bidi"]]
USE_I18N = True
USE_TZ = True
TIME_ZONE = env.str("KARMAYOGI_TIME_ZONE", default="Asia/Kolkata")
LOCALE_PATHS = [PACKAGE_DIR / "locale"]
WAGTAIL_I18N_ENABLED = True
WAGTAIL_CONTENT_LANGUAGES = LANGUAGES

# --- branding (derived by the kit so text on each colour meets WCAG 4.5:1) -----------------
BRANDING = {
    "site_name": SITE_NAME,
    "logo": env.str("KARMAYOGI_LOGO", default=""),
    "primary": env.str("KARMAYOGI_PRIMARY", default="#1f4e79"),
    "on_primary": env.str("KARMAYOGI_ON_PRIMARY", default="#ffffff"),
    "accent": env.str("KARMAYOGI_ACCENT", default="#f2a900"),
    "on_accent": env.str("KARMAYOGI_ON_ACCENT", default="#000000"),
    "link": env.str("KARMAYOGI_LINK", default="#1f4e79"),
}

# --- sign-in through the tenant's realm (mozilla-django-oidc) ------------------------------
OIDC_ISSUER = env.str("KARMAYOGI_OIDC_ISSUER", default="http://127.0.0.1:8080/realms/dev")
_endpoints = f"{OIDC_ISSUER}/protocol/openid-connect"
OIDC_RP_CLIENT_ID = env.str("KARMAYOGI_OIDC_CLIENT_ID", default="portal")
OIDC_RP_CLIENT_SECRET = env.str("KARMAYOGI_OIDC_CLIENT_SECRET", default="")
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
# The hub's identity provider in this realm, when the tenant brokers to the hub.
OIDC_HUB_IDP = env.str("KARMAYOGI_HUB_IDP", default="")
OIDC_HUB_NAME = env.str("KARMAYOGI_HUB_NAME", default="")
LOGIN_URL = "oidc_authentication_init"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"
LOGIN_REDIRECT_URL_FAILURE = "/auth/failed/"
AUTHENTICATION_BACKENDS = ["tenant_portal.accounts.backends.KeycloakBackend"]

# --- federation (tenant_portal.federation; rendered by the kit) ------------------------------
# {"code", "isHub", "hub", "hubIssuer", "hubUrl" (where xAPI statements go), "clientId",
#  "clientSecret", "publish" (its own courses are in the federation), "peers": [{"code", "url"}],
#  "keys": {code: keys URL}, "names": {code: display name},
#  "subscribe": {"languages", "competencyAreas"} | null}
FEDERATION = json.loads(env.str("KARMAYOGI_FEDERATION", default="{}"))

# --- departments (the spec's identity.departments; rendered by the kit) ----------------------
# {code: name}: the department reports' titles. A code missing here is shown as it is.
KARMAYOGI_DEPARTMENTS: dict[str, str] = json.loads(env.str("KARMAYOGI_DEPARTMENTS", default="{}"))

# --- OAI-PMH (tenant_portal.oai) --------------------------------------------------------------
# Who answers for the /oai repository (Identify's adminEmail); the spec has no contact address.
KARMAYOGI_ADMIN_EMAIL = env.str(
    "KARMAYOGI_ADMIN_EMAIL", default=f"webmaster@{urlsplit(PORTAL_URL).hostname or 'localhost'}"
)
# Records (or headers) per ListRecords / ListIdentifiers response.
KARMAYOGI_OAI_PAGE_SIZE = env.int("KARMAYOGI_OAI_PAGE_SIZE", default=100)

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
    "django.middleware.security.SecurityMiddleware",
    "tenant_portal.core.upload_limit.UploadLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "tenant_portal.core.page_cache.AnonymousPageCacheMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'portal.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("KARMAYOGI_CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# One cache all of a portal's workers share: anonymous pages and their generation
# (tenant_portal.core.page_cache). A folder on the embedded default; production points
# KARMAYOGI_CACHE_URL at a cache every replica reaches (redis://…, or dbcache://…).
CACHES = {
    "default": env.cache_url("KARMAYOGI_CACHE_URL", default=f"filecache://{DATA_DIR / 'cache'}")
}
CACHES["default"].setdefault("OPTIONS", {}).setdefault("MAX_ENTRIES", 5000)
KARMAYOGI_PAGE_CACHE_SECONDS = env.int("KARMAYOGI_PAGE_CACHE_SECONDS", default=300)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS: list[dict[str, str]] = []  # passwords live in Keycloak only

STATIC_URL = "/static/"
# Portals running the same code can share one collected copy (the local target does).
STATIC_ROOT = Path(env.str("KARMAYOGI_STATIC_ROOT", default=str(DATA_DIR / "static")))
STATICFILES_DIRS = [PACKAGE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = DATA_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# The largest request body (an uploaded document or image) the portal reads at all.
KARMAYOGI_MAX_UPLOAD_MB = env.int("KARMAYOGI_MAX_UPLOAD_MB", default=50)
WAGTAILIMAGES_MAX_UPLOAD_SIZE = 20 * 1024 * 1024

SESSION_COOKIE_NAME = f"karmayogi_{TENANT_CODE.replace('-', '_')}_session"
CSRF_COOKIE_NAME = f"karmayogi_{TENANT_CODE.replace('-', '_')}_csrftoken"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"

WAGTAIL_SITE_NAME = SITE_NAME
WAGTAILADMIN_BASE_URL = PORTAL_URL
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
    "root": {"handlers": ["console"], "level": env.str("KARMAYOGI_LOG_LEVEL", default="INFO")},
    # Every background task logs its start and end at INFO, WeasyPrint each step of every
    # certificate: noise in an operator's log.
    "loggers": {
        name: {"level": "WARNING"}
        for name in ("django.tasks", "django_tasks", "weasyprint", "fontTools")
    },
}
