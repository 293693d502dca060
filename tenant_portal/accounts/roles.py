"""Realm roles → Wagtail groups, applied at every sign-in.

The groups named here belong to Keycloak: a user's membership in them is exactly what the
token says at their last sign-in, so a role removed in Keycloak is gone at the next one.
Groups not named here are the portal's own and are left alone.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractUser, Group, Permission
from django.db import transaction

ROLE_GROUPS = {
    "content_creator": "Editors",
    "content_reviewer": "Moderators",
    "content_publisher": "Publishers",
    "tenant_admin": "Tenant administrators",
    "mdo_admin": "Department administrators",
}
MANAGED_GROUPS = frozenset(ROLE_GROUPS.values())
# The kit's realm roles (identity/desired.py, ROLES); a token also carries Keycloak's own
# (default-roles-<realm>, offline_access, uma_authorization), which mean nothing to an officer.
KIT_ROLES = ("learner", *ROLE_GROUPS)
DEPARTMENT_PREFIX = "/departments/"
PAGE_ACTIONS = ("add", "change", "publish", "bulk_delete", "lock", "unlock")
COLLECTION_ACTIONS = ("add", "change", "choose", "delete")


def department_from_groups(groups: Iterable[str]) -> str:
    """The department code in the token's ``groups`` claim (``/departments/<code>``), or ''."""
    for path in groups:
        if path.startswith(DEPARTMENT_PREFIX) and path.count("/") == 2:
            return path.removeprefix(DEPARTMENT_PREFIX)
    return ""


@transaction.atomic
def sync_groups(user: AbstractUser, roles: Iterable[str]) -> None:
    """Make the user's managed groups exactly those their realm roles map to."""
    wanted = {ROLE_GROUPS[role] for role in roles if role in ROLE_GROUPS}
    groups = {g.name: g for g in Group.objects.filter(name__in=MANAGED_GROUPS)}
    managed = user.groups.filter(name__in=MANAGED_GROUPS)
    member_of = set(managed.values_list("name", flat=True))
    if member_of - wanted:
        user.groups.remove(*(groups[name] for name in member_of - wanted))
    if wanted - member_of:
        user.groups.add(*(groups[name] for name in wanted - member_of if name in groups))


def _perm(codename: str, app_label: str) -> Permission:
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


@transaction.atomic
def ensure_groups() -> None:
    """Create the managed groups and their permissions; safe to run after every migrate.

    Editors and Moderators come from Wagtail. Publishing is the Publishers' alone, so the
    Moderators Wagtail creates with publish rights lose them here; reviewers approve in the
    moderation workflow. Tenant administrators get every Wagtail admin permission on this
    site's pages and collections, and user management, without being Django superusers.
    """
    from wagtail.models import Collection, GroupCollectionPermission, GroupPagePermission, Page

    root = Page.get_first_root_node()
    if root is None:  # a database being emptied; sync_site runs this again once it has a root
        return
    collection = Collection.get_first_root_node() or Collection.add_root(name="Root")
    access_admin = _perm("access_admin", "wagtailadmin")
    page_perms = {a: _perm(f"{a}_page", "wagtailcore") for a in PAGE_ACTIONS}

    editors, _ = Group.objects.get_or_create(name="Editors")
    moderators, _ = Group.objects.get_or_create(name="Moderators")
    publishers, _ = Group.objects.get_or_create(name="Publishers")
    admins, _ = Group.objects.get_or_create(name="Tenant administrators")
    departments, _ = Group.objects.get_or_create(name="Department administrators")

    for group, actions in (
        (editors, ("add", "change")),
        (moderators, ("add", "change", "lock", "unlock")),
        (publishers, ("add", "change", "publish", "lock", "unlock")),
        (admins, PAGE_ACTIONS),
    ):
        group.permissions.add(access_admin)
        for action in actions:
            GroupPagePermission.objects.get_or_create(
                group=group, page=root, permission=page_perms[action]
            )
    GroupPagePermission.objects.filter(group=moderators, permission=page_perms["publish"]).delete()

    for group in (editors, moderators, publishers, admins):
        for model in ("image", "document"):
            app = "wagtailimages" if model == "image" else "wagtaildocs"
            actions = COLLECTION_ACTIONS if group is admins else ("add", "choose")
            for action in actions:
                GroupCollectionPermission.objects.get_or_create(
                    group=group, collection=collection, permission=_perm(f"{action}_{model}", app)
                )

    admin_apps = [
        "wagtailadmin",
        "wagtailcore",
        "wagtailimages",
        "wagtaildocs",
        "wagtailredirects",
        "wagtailforms",
        "wagtailsnippets",
        "wagtailusers",
        "wagtaillocales",
        "wagtailsearch",
        "wagtailembeds",
        "branding",
        "home",
        "catalogue",
        "federation",
    ]
    admins.permissions.add(
        *Permission.objects.filter(content_type__app_label__in=admin_apps),
        *Permission.objects.filter(
            content_type__app_label="auth", content_type__model__in=("user", "group")
        ),
        _perm("view_department_reports", "accounts"),
        # The xAPI outbox and received statements: to look at, never to change.
        *Permission.objects.filter(content_type__app_label="xapi", codename__startswith="view_"),
    )
    # Posts (role-based learning) change what every officer's learning path shows: publishers
    # and tenant administrators manage them, as they publish courses.
    post_permissions = Permission.objects.filter(
        content_type__app_label="competencies", content_type__model__in=("post", "postcompetency")
    )
    for group in (publishers, admins):
        group.permissions.add(*post_permissions)
    departments.permissions.add(_perm("view_department_reports", "accounts"))
