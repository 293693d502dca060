"""``manage.py federation_credentials sign`` (the hub) and
``manage.py federation_credentials verify FILE --hub-url URL`` (a tenant).

``sign`` reads ``{"member", "issuer", "federationClientId", "federationClientSecret",
"brokerClientId", "brokerClientSecret"}`` as JSON on standard input (secrets never on the
command line) and prints the credentials document, signed with the hub's key. ``verify``
checks a document against the keys of the hub at URL (the hub URL of this tenant's own spec,
never one read from the file) and prints its payload as JSON. A refusal is one line."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenant_portal.federation.documents import one_line
from tenant_portal.federation.handshake import (
    HandshakeError,
    read_credentials,
    read_file,
    sign_credentials,
)

MAX_INPUT = 64 * 1024


class Command(BaseCommand):
    help = "Sign credentials for a member (the hub), or verify credentials from the hub."
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("sign", help="Sign the credentials given as JSON on standard input.")
        verify = actions.add_parser("verify", help="Verify a credentials document.")
        verify.add_argument("file", help="The credentials document (- for standard input).")
        verify.add_argument("--hub-url", required=True, help="The hub portal's URL.")

    def handle(self, *args: Any, **options: Any) -> None:
        stdin = options.get("stdin") or sys.stdin
        try:
            if options["action"] == "sign":
                text = stdin.read(MAX_INPUT + 1)
                if len(text) > MAX_INPUT:
                    raise HandshakeError(f"the input is over {MAX_INPUT // 1024} KB")
                try:
                    values = json.loads(text)
                except ValueError:
                    raise HandshakeError("the input is not JSON") from None
                self.stdout.write(sign_credentials(values))
                return
            token = read_file(options["file"], stdin)
            payload = read_credentials(token, hub_url=options["hub_url"])
        except HandshakeError as exc:
            raise CommandError(one_line(str(exc))) from None
        self.stdout.write(json.dumps(payload, ensure_ascii=False))
