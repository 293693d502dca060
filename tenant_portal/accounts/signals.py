"""Signal handlers: groups after migrate; the Keycloak session behind a sign-in."""

from __future__ import annotations

import time
from typing import Any

from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_migrate
from django.dispatch import receiver
from django.http import HttpRequest

from tenant_portal.accounts import realm_session
from tenant_portal.accounts.models import KeycloakSession
from tenant_portal.accounts.roles import ensure_groups

SID_SESSION_KEY = "keycloak_sid"
# Whether the header links to department reports; decided at sign-in (when roles are synced)
# so that every page does not ask the database for the user's permissions.
REPORTS_SESSION_KEY = "karmayogi_reports"


@receiver(post_migrate)
def create_managed_groups(sender: Any, **kwargs: Any) -> None:
    if getattr(sender, "label", "") != "accounts":
        return
    # post_migrate reaches apps one at a time; make every app's permissions exist first.
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=kwargs.get("using", "default"))
    ensure_groups()


@receiver(user_logged_in)
def remember_keycloak_session(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    """Tie this portal session to the Keycloak session that opened it (back-channel logout),
    keep what the session re-check needs and end it no later than the realm session."""
    request.session[REPORTS_SESSION_KEY] = user.has_perm("accounts.view_department_reports")
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
