"""``manage.py federation_rotate_key``: sign from now on with a new key; the old one stays
published while the feed still serves records signed with it, or a credential issued here names
it."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from tenant_portal.federation.signing import rotate_key


class Command(BaseCommand):
    help = "Rotate this instance's record-signing key."

    def handle(self, *args: Any, **options: Any) -> None:
        key = rotate_key()
        self.stdout.write(f"signing with key {key.kid} from now on")
