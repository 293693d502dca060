"""``manage.py federation_sync [PEER…]``: pull every peer's feed (or the named ones) once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenant_portal.federation.sync import PAGE_LIMIT, SyncError, peers, sync


class Command(BaseCommand):
    help = "Pull the change feeds of this instance's peers into its catalogue."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("peers", nargs="*", help="Peer codes (default: every peer).")
        parser.add_argument("--limit", type=int, default=PAGE_LIMIT, help="Changes per page.")

    def handle(self, *args: Any, **options: Any) -> None:
        codes = options["peers"] or [p.code for p in peers()]
        failed = []
        for code in codes:
            try:
                result = sync(code, limit=options["limit"])
            except SyncError as exc:
                failed.append(str(exc))
                self.stderr.write(str(exc))
                continue
            if result.framework:
                self.stdout.write(
                    f"{code}: {result.framework}; {result.released} quarantined record(s) released"
                )
            self.stdout.write(
                f"{code}: {result.applied} applied, {result.quarantined} quarantined, "
                f"cursor {result.cursor} of {result.last}"
            )
        if failed:
            raise CommandError(f"{len(failed)} of {len(codes)} peer(s) failed")
