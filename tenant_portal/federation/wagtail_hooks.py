"""Quarantined federation records in the Wagtail admin, for tenant administrators to see why
a record from a peer was refused. They can look and delete (once the origin has fixed the
record, so that `federation status` stops reporting it), never add or edit: a record is fixed
at its origin, not here.

The hub's members are shown read-only: they change through the handshake and the
``federation_member`` command, which keep the catalogue and the caches in step."""

from __future__ import annotations

from typing import Any

from wagtail import hooks
from wagtail.admin.viewsets.model import ModelViewSet
from wagtail.permission_policies import ModelPermissionPolicy
from wagtail.permissions import register_permission_policy

from tenant_portal.federation.models import Member, Quarantined, QuarantinedPackage


class ViewAndDelete(ModelPermissionPolicy):
    def user_has_permission(self, user: Any, action: str) -> bool:
        return action in ("view", "delete") and bool(super().user_has_permission(user, action))

    def user_has_any_permission(self, user: Any, actions: Any) -> bool:
        return any(self.user_has_permission(user, action) for action in actions)


class ViewOnly(ModelPermissionPolicy):
    def user_has_permission(self, user: Any, action: str) -> bool:
        return action == "view" and bool(super().user_has_permission(user, action))

    def user_has_any_permission(self, user: Any, actions: Any) -> bool:
        return any(self.user_has_permission(user, action) for action in actions)


register_permission_policy(Quarantined, ViewAndDelete(Quarantined), exact_class=True)
register_permission_policy(Member, ViewOnly(Member), exact_class=True)
register_permission_policy(QuarantinedPackage, ViewAndDelete(QuarantinedPackage), exact_class=True)


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


class QuarantinedPackageViewSet(ModelViewSet):
    """Content packages refused by a pull. Deleting one has the next pull fetch that version
    again (once its origin or the hub has fixed it)."""

    model = QuarantinedPackage
    icon = "warning"
    menu_label = "Quarantined packages"
    add_to_admin_menu = True
    list_display = ["peer", "uuid", "version", "reason", "received"]
    list_filter = ["peer"]
    search_fields = ["reason"]
    form_fields = ["reason"]
    inspect_view_enabled = True
    inspect_view_fields = ["peer", "uuid", "version", "reason", "payload", "received"]
    copy_view_enabled = False


@hooks.register("register_admin_viewset")
def register_package_quarantine() -> QuarantinedPackageViewSet:
    return QuarantinedPackageViewSet("quarantined_packages")


class MemberViewSet(ModelViewSet):
    model = Member
    icon = "group"
    menu_label = "Federation members"
    add_to_admin_menu = True
    list_display = ["code", "name", "status", "source", "keys_url", "admitted_by", "admitted_at"]
    list_filter = ["status", "source"]
    search_fields = ["code", "name"]
    form_fields = ["name"]
    inspect_view_enabled = True
    inspect_view_fields = [
        "code",
        "name",
        "tenant_type",
        "portal_url",
        "keys_url",
        "broker_redirect_uri",
        "publish",
        "status",
        "courses_withdrawn",
        "source",
        "admitted_by",
        "admitted_at",
        "changed_at",
    ]
    copy_view_enabled = False


@hooks.register("register_admin_viewset")
def register_members() -> MemberViewSet:
    return MemberViewSet("federation_members")
