from __future__ import annotations

from django.apps import AppConfig


class OaiConfig(AppConfig):
    name = "tenant_portal.oai"
    label = "oai"
    verbose_name = "OAI-PMH"
