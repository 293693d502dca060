"""``manage.py xapi_deliver [--now] [--json]``: send the outbox's due statements to the hub."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenant_portal.xapi.delivery import DeliveryError, NoHub, deliver, outbox_status


class Command(BaseCommand):
    help = "Deliver this instance's xAPI statements (course completions) to the hub."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--now", action="store_true", help="Also send rows still waiting out their backoff."
        )
        parser.add_argument(
            "--status", action="store_true", help="Only show the outbox; send nothing."
        )
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["status"]:
            data = outbox_status()
            if options["as_json"]:
                self.stdout.write(json.dumps(data))
            else:
                self.stdout.write(
                    f"xapi outbox: {data['pending']} pending, {data['delivered']} delivered, "
                    f"{data['rejected']} rejected"
                    + (f", last error: {data['last_error']}" if data["last_error"] else "")
                )
            return
        try:
            result = deliver(now=options["now"])
        except NoHub as exc:
            # Not an error: a portal outside any federation keeps its statements until it joins.
            self.stdout.write(f"xapi: {exc}; {outbox_status()['pending']} statement(s) wait")
            return
        except DeliveryError as exc:
            raise CommandError(str(exc)) from None
        if options["as_json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "delivered": result.delivered,
                        "rejected": result.rejected,
                        "failed": result.failed,
                        "errors": result.errors,
                    }
                )
            )
        else:
            self.stdout.write(result.line)
        if result.failed or result.rejected:
            raise CommandError(
                f"{result.failed + result.rejected} statement(s) not delivered: {result.errors[-1]}"
            )
