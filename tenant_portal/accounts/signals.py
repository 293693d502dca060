"""Signal handlers: groups after migrate; the Keycloak session behind a sign-in; the cached
user row dropped when the user changes."""

from __future__ import annotations

import time
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.contrib.auth.signals import user_logged_in
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_migrate, post_save
from django.dispatch import receiver
from django.http import HttpRequest

from tenant_portal.accounts import realm_session
from tenant_portal.accounts.models import KeycloakSession
from tenant_portal.accounts.roles import ensure_groups

SID_SESSION_KEY = "keycloak_sid"
# Whether the header links to department reports; decided at sign-in (when roles are synced)
# so that every page does not ask the database for the user's permissions.
REPORTS_SESSION_KEY = "karmayogi_reports"
# Whether pages carry Wagtail's userbar (for editors: a link to edit the page), decided with
# the roles likewise. The admin itself re-checks the realm and the rights on every request.
EDITS_SESSION_KEY = "karmayogi_edits"
ACCESS_ADMIN = "wagtailadmin.access_admin"


@receiver(post_migrate)
def create_managed_groups(sender: Any, **kwargs: Any) -> None:
    if getattr(sender, "label", "") != "accounts":
        return
    # post_migrate reaches apps one at a time; make every app's permissions exist first.
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=kwargs.get("using", "default"))
    ensure_groups()


def user_key(user_id: Any) -> str:
    """Where ``backends.KeycloakBackend.get_user`` keeps a user's row in the shared cache."""
    return f"auth-user:{user_id}"


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
@receiver(post_delete, sender=settings.AUTH_USER_MODEL)
def forget_user(sender: Any, instance: Any, **kwargs: Any) -> None:
    """Drop the cached user row (``backends.KeycloakBackend.get_user``) now, and again once the
    transaction commits: a request that read the old row meanwhile may have cached it."""
    key = user_key(instance.pk)
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key))


@receiver(user_logged_in)
def remember_keycloak_session(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    """Tie this portal session to the Keycloak session that opened it (back-channel logout),
    keep what the session re-check needs and end it no later than the realm session."""
    request.session[REPORTS_SESSION_KEY] = user.has_perm("accounts.view_department_reports")
    request.session[EDITS_SESSION_KEY] = user.has_perm(ACCESS_ADMIN)
    tokens = realm_session.tokens_of(request)
    if tokens is not None:
        realm_session.remember(request.session, tokens, now=time.time())
    sid = request.session.get(SID_SESSION_KEY)
    if not sid:
        return
    if request.session.session_key is None:
        request.session.save()
    KeycloakSession.objects.update_or_create(
        session_key=request.session.session_key, defaults={"sid": sid, "user": user}
    )
