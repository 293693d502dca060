from __future__ import annotations

from django.apps import AppConfig


class HomeConfig(AppConfig):
    name = "tenant_portal.home"
    label = "home"
    verbose_name = "Home"
