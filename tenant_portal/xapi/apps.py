from __future__ import annotations

from django.apps import AppConfig


class XapiConfig(AppConfig):
    name = "tenant_portal.xapi"
    label = "xapi"
    verbose_name = "xAPI completions"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from tenant_portal.learning.models import Certificate
        from tenant_portal.xapi import services

        # Signals rather than a call in learning.progress: every way a certificate is issued
        # or removed (completion, the admin, a shell, an account's deletion) queues its
        # statement, inside the transaction that issues or removes it.
        post_save.connect(
            services.certificate_issued, sender=Certificate, dispatch_uid="xapi-completed"
        )
        post_delete.connect(
            services.certificate_removed, sender=Certificate, dispatch_uid="xapi-voided"
        )
