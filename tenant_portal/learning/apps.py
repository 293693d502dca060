from __future__ import annotations

from django.apps import AppConfig


class LearningConfig(AppConfig):
    name = "tenant_portal.learning"
    label = "learning"
    verbose_name = "Learning"

    def ready(self) -> None:
        from tenant_portal.learning import state

        state.connect()
