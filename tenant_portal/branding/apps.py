from __future__ import annotations

from django.apps import AppConfig


class BrandingConfig(AppConfig):
    name = "tenant_portal.branding"
    label = "branding"
    verbose_name = "Branding"
