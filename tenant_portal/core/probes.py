"""``/healthz`` for process supervisors, answered before host checks and HTTPS redirects.

A liveness probe (systemd, a Kubernetes kubelet, a load balancer) calls the process at its own
address: its ``Host`` is an IP and it speaks plain HTTP inside the network. Production
settings would answer that with 400 (``ALLOWED_HOSTS``) or a redirect to HTTPS, so the probe
would never see the process live. This middleware, first in the stack, answers that one path
and nothing else; ``/readyz``, which touches the database and Keycloak, stays behind every check.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from tenant_portal.core.views import healthz


class LivenessProbeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == "/healthz" and request.method in ("GET", "HEAD"):
            return healthz(request)
        return self.get_response(request)
