"""``manage.py federation_admit FILE (--check | --admitted-by WHO) [--max-age SECONDS]`` (the
hub): verify a join request and, unless ``--check``, record its member. Prints the request's
fields as JSON; a refusal is one line and records nothing."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenant_portal.federation.documents import one_line
from tenant_portal.federation.handshake import (
    MAX_AGE_SECONDS,
    HandshakeError,
    admit,
    read_file,
    read_request,
)


class Command(BaseCommand):
    help = "Verify a tenant's join request and admit it as a member of this hub's federation."
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The join request (- for standard input).")
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--check", action="store_true", help="Verify only; record nothing.")
        action.add_argument("--admitted-by", help="Who admits it (recorded with the member).")
        parser.add_argument(
            "--max-age",
            type=int,
            default=MAX_AGE_SECONDS,
            help=f"Oldest request accepted, in seconds (default {MAX_AGE_SECONDS}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            token = read_file(options["file"], options.get("stdin"))
            if options["check"]:
                request = read_request(token, max_age=options["max_age"])
            else:
                request = admit(
                    token, admitted_by=options["admitted_by"], max_age=options["max_age"]
                )
        except HandshakeError as exc:
            raise CommandError(one_line(str(exc))) from None
        self.stdout.write(json.dumps(request.as_json(), ensure_ascii=False))
