from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "tenant_portal.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from tenant_portal.accounts import signals  # noqa: F401
