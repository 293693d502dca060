from __future__ import annotations

from django.apps import AppConfig


class CompetenciesConfig(AppConfig):
    name = "tenant_portal.competencies"
    label = "competencies"
    verbose_name = "Competencies"
