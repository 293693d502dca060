from __future__ import annotations

from django.apps import AppConfig


class LearningConfig(AppConfig):
    name = "tenant_portal.learning"
    label = "learning"
    verbose_name = "Learning"

    def ready(self) -> None:
        from tenant_portal.learning import state

        state.connect()

        from django.db.models.signals import pre_delete

        from tenant_portal.learning.credentials import revoke_on_delete
        from tenant_portal.learning.models import Certificate

        pre_delete.connect(revoke_on_delete, sender=Certificate, dispatch_uid="revoke_credential")
