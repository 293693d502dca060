"""Sign-in through the tenant's realm: mozilla-django-oidc, plus what Keycloak's tokens carry.

At each sign-in the user's names come from the ID token and userinfo, their Wagtail groups
from their realm roles, and their department from the ``groups`` claim; the session re-check
(``middleware.py``) applies them again from userinfo. Users are found by the token's ``sub``,
never by e-mail: two realms may hold the same address.

The user row behind a session is kept in the shared cache (``signals.user_key``), so a signed-in
page does not read it again on every request; any save or delete of the user (a sign-in, a
re-check applying new roles or names, an administrator's change) drops it at once and again
when the transaction commits. Permissions are not kept with it: they are read from the groups
whenever one is checked.
"""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.cache import cache
from django.db import transaction
from django.db.models import QuerySet
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from tenant_portal.accounts import realm_session
from tenant_portal.accounts.models import Profile
from tenant_portal.accounts.roles import department_from_groups, sync_groups
from tenant_portal.accounts.signals import SID_SESSION_KEY, user_key

USER_SECONDS = 300


class KeycloakBackend(OIDCAuthenticationBackend):
    def get_user(self, user_id: Any) -> AbstractUser | None:
        """The user of a session, from the shared cache when it is there."""
        key = user_key(user_id)
        user: AbstractUser | None = cache.get(key)
        if user is None:
            user = super().get_user(user_id)
            if user is not None:
                cache.set(key, user, USER_SECONDS)
        return user

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return bool(claims.get("sub"))

    def filter_users_by_claims(self, claims: dict[str, Any]) -> QuerySet[AbstractUser]:
        return get_user_model().objects.filter(profile__subject=claims.get("sub", ""))

    def get_token(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The code exchange's tokens; the refresh token is what later re-checks use."""
        requested_at = time.time()
        token_info: dict[str, Any] = super().get_token(payload)
        if payload.get("grant_type") == "authorization_code" and self.request is not None:
            # Without a refresh token the session could never be re-checked: no sign-in.
            tokens = realm_session.tokens_from_response(token_info, requested_at=requested_at)
            setattr(self.request, realm_session.TOKENS_ATTRIBUTE, tokens)
        return token_info

    def get_userinfo(
        self, access_token: str, id_token: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Userinfo merged over the verified ID token; remember the Keycloak session id."""
        claims: dict[str, Any] = {
            **payload,
            **super().get_userinfo(access_token, id_token, payload),
        }
        if claims.get("sub") != payload.get("sub"):
            raise PermissionError("userinfo answered for another subject")
        if self.request is not None and payload.get("sid"):
            self.request.session[SID_SESSION_KEY] = payload["sid"]
        return claims

    @transaction.atomic
    def create_user(self, claims: dict[str, Any]) -> AbstractUser:
        user = get_user_model().objects.create_user(
            username=f"{claims['sub']}"[:150], email=claims.get("email", "")
        )
        Profile.objects.create(user=user, subject=claims["sub"])
        return self.update_user(user, claims)

    @transaction.atomic
    def update_user(self, user: AbstractUser, claims: dict[str, Any]) -> AbstractUser:
        user.first_name = str(claims.get("given_name", ""))[:150]
        user.last_name = str(claims.get("family_name", ""))[:150]
        user.email = str(claims.get("email", ""))
        user.is_superuser = False
        user.is_staff = False
        user.save()
        roles = [str(r) for r in claims.get("roles", [])]
        profile, _ = Profile.objects.get_or_create(user=user, defaults={"subject": claims["sub"]})
        profile.roles = sorted(roles)
        profile.department = department_from_groups(claims.get("groups", []))
        profile.email_verified = claims.get("email_verified") is True
        post = claims.get("post", "")
        profile.post_claimed = post.strip()[:64] if isinstance(post, str) else ""
        profile.save()
        sync_groups(user, roles)
        return user
