"""``manage.py federation_request --broker-redirect-uri URI`` (a tenant): print this
instance's join request, one line of compact JWS, for the hub's operator to admit."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenant_portal.federation.documents import one_line
from tenant_portal.federation.handshake import HandshakeError, join_request


class Command(BaseCommand):
    help = "Print this instance's signed request to join a hub in another deployment."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--broker-redirect-uri",
            required=True,
            help="Where the hub realm sends people back to this tenant's realm (its broker).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            token = join_request(broker_redirect_uri=options["broker_redirect_uri"])
        except HandshakeError as exc:
            raise CommandError(one_line(str(exc))) from None
        self.stdout.write(token)
