"""URL routes. The sign-in routes are the ones the kit registers in the realm's `portal` client:
``/auth/callback/`` (redirect URI) and ``/auth/backchannel-logout/``."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import include, path, re_path, reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.i18n import set_language
from mozilla_django_oidc.views import OIDCLogoutView
from wagtail import urls as wagtail_urls
from wagtail.admin import urls as wagtailadmin_urls
from wagtail.documents import urls as wagtaildocs_urls

from tenant_portal.accounts import views as accounts
from tenant_portal.core import routing
from tenant_portal.core import views as core
from tenant_portal.federation import views as federation
from tenant_portal.oai import views as oai


def admin_sign_in(request: HttpRequest) -> HttpResponse:
    """Wagtail's own ``/admin/login/`` shows a password form that can never succeed (passwords
    live in Keycloak): send every request for it, a posted form too, to the OIDC sign-in,
    keeping where the visitor was going (the sign-in view checks ``next`` is this site's)."""
    target = request.GET.get("next") or reverse("wagtailadmin_home")
    return redirect(f"{reverse('oidc_authentication_init')}?{urlencode({'next': target})}")


urlpatterns = [
    path("healthz", core.healthz, name="healthz"),
    path("readyz", core.readyz, name="readyz"),
    path(
        "auth/authenticate/", accounts.AuthenticateView.as_view(), name="oidc_authentication_init"
    ),
    path("auth/callback/", accounts.CallbackView.as_view(), name="oidc_authentication_callback"),
    path("auth/logout/", OIDCLogoutView.as_view(), name="oidc_logout"),
    path("auth/backchannel-logout/", accounts.backchannel_logout, name="backchannel_logout"),
    path("auth/failed/", accounts.sign_in_failed, name="sign_in_failed"),
    # Exempt from CSRF so anonymous pages carry no per-visitor token and can be cached whole
    # (core.page_cache): a forged request can only change the visitor's interface language.
    path("i18n/setlang/", csrf_exempt(set_language), name="set_language"),
    path("", include("tenant_portal.learning.urls")),
    path("federation/v1/changes", federation.changes, name="federation_changes"),
    path("federation/v1/keys", federation.keys, name="federation_keys"),
    path("federation/v1/framework", federation.framework, name="federation_framework"),
    path("federation/v1/members", federation.members, name="federation_members"),
    path("federation/v1/packages/<uuid:course>", federation.package, name="federation_package"),
    path(
        "federation/v1/packages/<uuid:course>/files/<str:sha256>",
        federation.package_file,
        name="federation_package_file",
    ),
    path("learn/files/<str:sha256>/<str:name>", federation.course_file, name="course_file"),
    path("", include("tenant_portal.xapi.urls")),
    # Before Wagtail's admin, whose login view it replaces; Django's own admin (installed for
    # Wagtail's use) is not mounted, so it has no password form to replace.
    path("admin/login/", admin_sign_in, name="admin_sign_in"),
    path("admin/", include(wagtailadmin_urls)),
    path("documents/", include(wagtaildocs_urls)),
    path("oai", oai.endpoint, name="oai"),
    # No language prefix in URLs: the language is the visitor's choice (cookie, then the
    # browser's Accept-Language, then the tenant's first language), and the same URL serves
    # every language. With unprefixed i18n_patterns Django would pin such URLs to the default.
    re_path(r"^((?:[\w\-]+/)*)$", routing.serve, name="karmayogi_serve"),
    path("", include(wagtail_urls)),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
