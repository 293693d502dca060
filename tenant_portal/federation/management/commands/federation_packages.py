"""``manage.py federation_packages [PEER…]``: pull the content packages of the courses this
instance holds records of (a member pulls the hub; the hub pulls each publishing member)."""

from __future__ import annotations

from typing import Any

import httpx
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenant_portal.federation.packages import pull_packages
from tenant_portal.federation.sync import SyncError, access_token, peers


class Command(BaseCommand):
    help = "Pull, check and apply the content packages of courses from this instance's peers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("peers", nargs="*", help="Peer codes (default: every peer).")

    def handle(self, *args: Any, **options: Any) -> None:
        known = {p.code: p.url for p in peers()}
        codes = options["peers"] or list(known)
        failed = []
        for code in codes:
            if code not in known:
                failed.append(code)
                self.stderr.write(f"{code}: not a peer of this instance")
                continue
            try:
                result = pull_packages(code, known[code], access_token())
            except (SyncError, httpx.HTTPError) as exc:
                failed.append(code)
                self.stderr.write(f"{code}: {exc.__class__.__name__}: {str(exc)[:200]}")
                continue
            self.stdout.write(
                f"{code}: {result.applied} applied, {result.quarantined} quarantined, "
                f"{result.unavailable} not offered, {len(result.failed)} to retry"
            )
            for failure in result.failed:
                self.stderr.write(f"{code}: {failure} (pulled again next round)")
        if failed:
            raise CommandError(f"{len(failed)} of {len(codes)} peer(s) failed")
