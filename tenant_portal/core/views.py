"""Health endpoints for the process manager and the load balancer."""

from __future__ import annotations

import httpx
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and answering."""
    return JsonResponse({"status": "ok", "tenant": settings.PORTAL.tenant})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """The database answers and the tenant's realm is reachable; 503 names what is not."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means not ready
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        response = httpx.get(
            f"{settings.PORTAL.oidc.issuer}/.well-known/openid-configuration", timeout=2.0
        )
        checks["keycloak"] = (
            "ok" if response.status_code == 200 else f"error: HTTP {response.status_code}"
        )
    except httpx.HTTPError as exc:
        checks["keycloak"] = f"error: {exc.__class__.__name__}"
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )
