"""``manage.py revoke_certificate ID``: revoke a certificate's portable credential.

Its bit in this instance's status list is set; every instance that imported it marks it
revoked at its next ``check_credentials``. The certificate and its verification page stay.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenant_portal.learning.credentials import revoke
from tenant_portal.learning.models import Certificate


class Command(BaseCommand):
    help = "Revoke the portable credential of a certificate (by its number)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("certificate", help="The certificate's number (a UUID).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            number = uuid.UUID(options["certificate"])
        except ValueError:
            raise CommandError(
                f"{options['certificate'][:64]!r} is not a certificate number"
            ) from None
        certificate = Certificate.objects.filter(id=number).first()
        if certificate is None:
            raise CommandError(f"no certificate {number} was issued here")
        credential = revoke(certificate)
        if credential is None:
            self.stdout.write(f"certificate {number} has no credential: nothing to revoke")
        else:
            self.stdout.write(f"revoked {credential} (status index {credential.status_index})")
