from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class FederationConfig(AppConfig):
    name = "tenant_portal.federation"
    label = "federation"
    verbose_name = "Federation"

    def ready(self) -> None:
        from tenant_portal.catalogue.services import entry_changed

        entry_changed.connect(_publish, dispatch_uid="federation-publish-local")


def _publish(sender: Any, entry: Any, **kwargs: Any) -> None:
    """Every change of a course made here goes into the feed, except an internal course
    that was never offered (it stays home)."""
    from tenant_portal.federation.changes import publish_local
    from tenant_portal.federation.models import Change

    if entry.internal and not Change.objects.filter(uuid=entry.uuid).exists():
        return
    publish_local(entry)
