from __future__ import annotations

from django.apps import AppConfig


class CatalogueConfig(AppConfig):
    name = "tenant_portal.catalogue"
    label = "catalogue"
    verbose_name = "Catalogue"

    def ready(self) -> None:
        from tenant_portal.catalogue import signals  # noqa: F401
