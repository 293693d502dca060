"""The portal's routes behind ``/bench/bare/``: the cheapest page Django can serve, through
the same middleware, as the baseline the portal's pages are measured against."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from tenant_portal.urls import urlpatterns as portal_urlpatterns


def bare(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [path("bench/bare/", bare), *portal_urlpatterns]
