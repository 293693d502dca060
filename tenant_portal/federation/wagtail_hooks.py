"""Quarantined federation records in the Wagtail admin, for tenant administrators to see why
a record from a peer was refused (read-only: a record is fixed at its origin, not here)."""

from __future__ import annotations

from wagtail import hooks
from wagtail.admin.viewsets.model import ModelViewSet

from tenant_portal.federation.models import Quarantined


class QuarantinedViewSet(ModelViewSet):
    model = Quarantined
    icon = "warning"
    menu_label = "Quarantined records"
    add_to_admin_menu = True
    list_display = ["peer", "position", "uuid", "reason", "received"]
    list_filter = ["peer"]
    search_fields = ["reason", "uuid"]
    form_fields = ["reason"]
    inspect_view_enabled = True
    inspect_view_fields = ["peer", "position", "uuid", "reason", "payload", "received"]
    copy_view_enabled = False


@hooks.register("register_admin_viewset")
def register_quarantine() -> QuarantinedViewSet:
    return QuarantinedViewSet("quarantined")
