from __future__ import annotations

from django.apps import AppConfig


class LearningConfig(AppConfig):
    name = "tenant_portal.learning"
    label = "learning"
    verbose_name = "Learning"
