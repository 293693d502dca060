"""The xAPI outbox (every instance) and the received statements (the hub) in the Wagtail
admin, read-only: a statement is fixed once written; an operator only looks. Seeing them takes
the models' "view" permission (a Django superuser has it)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Permission
from django.db.models import QuerySet
from wagtail import hooks
from wagtail.admin.viewsets.model import ModelViewSet
from wagtail.permission_policies import ModelPermissionPolicy
from wagtail.permissions import register_permission_policy

from tenant_portal.xapi.models import OutboxStatement, ReceivedStatement


class ViewOnly(ModelPermissionPolicy):
    """Nobody adds, edits or deletes a statement here, superusers included."""

    def user_has_permission(self, user: Any, action: str) -> bool:
        return action == "view" and bool(super().user_has_permission(user, action))

    def user_has_any_permission(self, user: Any, actions: Any) -> bool:
        return "view" in actions and self.user_has_permission(user, "view")


for _model in (OutboxStatement, ReceivedStatement):
    register_permission_policy(_model, ViewOnly(_model), exact_class=True)


class ReadOnlyViewSet(ModelViewSet):
    add_to_admin_menu = True
    inspect_view_enabled = True
    copy_view_enabled = False
    form_fields = ["statement"]

    def get_permissions_to_register(self) -> QuerySet[Permission]:
        permissions: QuerySet[Permission] = super().get_permissions_to_register()
        return permissions.filter(codename__startswith="view_")


class OutboxViewSet(ReadOnlyViewSet):
    model = OutboxStatement
    icon = "upload"
    menu_label = "xAPI outbox"
    list_display = ["statement_id", "verb", "state", "attempts", "next_attempt_at", "last_error"]
    list_filter = ["state", "verb"]
    search_fields = ["last_error"]
    inspect_view_fields = [
        "statement_id",
        "certificate",
        "state",
        "attempts",
        "next_attempt_at",
        "last_error",
        "created",
        "delivered",
        "statement",
    ]


class ReceivedViewSet(ReadOnlyViewSet):
    model = ReceivedStatement
    icon = "download"
    menu_label = "xAPI statements received"
    list_display = ["statement_id", "platform", "verb", "object_id", "stored"]
    list_filter = ["platform", "verb"]
    inspect_view_fields = [
        "statement_id",
        "platform",
        "verb",
        "object_id",
        "voids",
        "timestamp",
        "stored",
        "statement",
    ]


@hooks.register("register_admin_viewset")
def register_outbox() -> OutboxViewSet:
    return OutboxViewSet("xapi_outbox")


@hooks.register("register_admin_viewset")
def register_received() -> ReceivedViewSet:
    return ReceivedViewSet("xapi_received")
