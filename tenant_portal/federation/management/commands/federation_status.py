"""``manage.py federation_status [--json]``: per peer, the cursor, lag, last success, last
error and how many records and content packages sit in quarantine; and this instance's own
feed."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Count, Max

from tenant_portal.federation.models import Change, PeerState, Quarantined, QuarantinedPackage
from tenant_portal.federation.sync import peers


def status() -> dict[str, Any]:
    states = {s.peer: s for s in PeerState.objects.all()}
    held = dict(Quarantined.objects.values_list("peer").annotate(n=Count("id")))
    packages = dict(QuarantinedPackage.objects.values_list("peer").annotate(n=Count("id")))
    rows = []
    for peer in peers():
        state = states.get(peer.code) or PeerState(peer=peer.code)
        rows.append(
            {
                "peer": peer.code,
                "url": peer.url,
                "cursor": state.cursor,
                "lag": state.lag,
                "last_success": state.last_success.isoformat() if state.last_success else None,
                "last_error": state.last_error or None,
                "quarantined": held.get(peer.code, 0),
                "quarantined_packages": packages.get(peer.code, 0),
            }
        )
    return {
        "feed": {
            "changes": Change.objects.count(),
            "last_position": Change.objects.aggregate(m=Max("position"))["m"] or 0,
        },
        "peers": rows,
    }


class Command(BaseCommand):
    help = "Show the federation state of this instance."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args: Any, **options: Any) -> None:
        data = status()
        if options["as_json"]:
            self.stdout.write(json.dumps(data))
            return
        feed = data["feed"]
        self.stdout.write(
            f"feed: {feed['changes']} course(s), last position {feed['last_position']}"
        )
        for row in data["peers"]:
            self.stdout.write(
                f"{row['peer']}: cursor {row['cursor']}, lag {row['lag']}, "
                f"last success {row['last_success'] or 'never'}, "
                f"quarantined {row['quarantined']}, "
                f"packages quarantined {row['quarantined_packages']}"
                + (f", last error: {row['last_error']}" if row["last_error"] else "")
            )
