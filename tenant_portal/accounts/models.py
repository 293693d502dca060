"""Who a portal user is in Keycloak, and which Keycloak sessions their portal sessions belong to."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Profile(models.Model):
    """The link from a Django user to the realm's subject, with what the token said of them."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    subject = models.CharField(max_length=255, unique=True, help_text="The token's `sub`.")
    department = models.CharField(
        max_length=64, blank=True, help_text="From the token's groups: /departments/<code>."
    )
    roles = models.JSONField(default=list, blank=True, help_text="Realm roles at last sign-in.")
    name_local = models.CharField(
        max_length=300,
        blank=True,
        help_text="The learner's name in their own script, for certificates (e.g. Devanagari).",
    )
    # An officer's post (competencies.Post) by its code, from three sources; the first that
    # names a known post wins (learning.path.post_of).
    post_claimed = models.CharField(
        max_length=64, blank=True, help_text="The token's post claim at last sign-in or re-check."
    )
    post_assigned = models.CharField(
        max_length=64, blank=True, help_text="Set by a department administrator."
    )
    post_chosen = models.CharField(
        max_length=64, blank=True, help_text="The officer's own choice on My learning."
    )
    email_verified = models.BooleanField(
        default=False, help_text="The realm's email_verified claim at last sign-in."
    )

    @property
    def kit_roles(self) -> list[str]:
        """The kit's roles among the token's, in the kit's order (for the officer's page)."""
        from tenant_portal.accounts.roles import KIT_ROLES

        return [role for role in KIT_ROLES if role in self.roles]

    class Meta:
        permissions = [("view_department_reports", "Can see their department's reports")]

    def __str__(self) -> str:
        return f"{self.user} ({self.subject})"


class KeycloakSession(models.Model):
    """A portal session opened by a Keycloak session (``sid``); back-channel logout ends it."""

    sid = models.CharField(max_length=255, db_index=True)
    session_key = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.user} sid={self.sid}"
