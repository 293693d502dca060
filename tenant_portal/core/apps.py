from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "tenant_portal.core"
    label = "core"
    verbose_name = "Portal core"

    def ready(self) -> None:
        from tenant_portal.core import site_cache  # noqa: F401  (connects its receivers)
