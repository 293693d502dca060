"""``manage.py check_credentials``: read again the status of every imported credential.

A credential its issuer revoked since it was imported is marked revoked (it leaves the
passbook's levels and is shown as revoked). An issuer that cannot be reached leaves its
credentials as they were; the command names them and exits 1. Run it from cron or a timer
next to ``federation_sync``.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tenant_portal.learning.credentials import CredentialError, check_imported
from tenant_portal.learning.models import ImportedCredential


class Command(BaseCommand):
    help = "Check the revocation status of every credential imported from another instance."

    def handle(self, *args: Any, **options: Any) -> None:
        checked = revoked = 0
        failed: list[str] = []
        for row in ImportedCredential.objects.filter(revoked__isnull=True).order_by("pk"):
            try:
                if check_imported(row):
                    revoked += 1
                checked += 1
            except CredentialError as exc:
                failed.append(f"{row.credential_id}: {exc}")
        self.stdout.write(f"{checked} checked, {revoked} newly revoked, {len(failed)} unreadable")
        for line in failed:
            self.stderr.write(line)
        if failed:
            raise CommandError(f"{len(failed)} credential(s) could not be checked")
