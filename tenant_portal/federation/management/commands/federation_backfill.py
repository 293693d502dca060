"""``manage.py federation_backfill``: put every course made here that the feed lacks into it
(a portal that had courses before it federated, or a restored backup). Cheap when there is
nothing to do; ``prepare_portal`` runs it before every start."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from tenant_portal.catalogue.models import CatalogueEntry
from tenant_portal.federation.changes import publish_local
from tenant_portal.federation.models import Change


class Command(BaseCommand):
    help = "Append to the change feed every local course it does not hold yet."

    def handle(self, *args: Any, **options: Any) -> None:
        missing = (
            CatalogueEntry.objects.filter(origin=settings.PORTAL.tenant, internal=False)
            .exclude(uuid__in=Change.objects.values("uuid"))
            .order_by("pk")
        )
        count = 0
        for entry in missing.iterator():
            publish_local(entry)
            count += 1
        if count:
            self.stdout.write(f"{count} course(s) added to the change feed")
