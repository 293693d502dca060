"""``manage.py federation_members [--json]`` (the hub): the members of its federation."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenant_portal.federation.membership import is_hub, members


def rows() -> list[dict[str, Any]]:
    return [
        {
            "code": m.code,
            "name": m.name,
            "status": m.status,
            "source": m.source,
            "portalUrl": m.portal_url,
            "keysUrl": m.keys_url,
            "publish": m.publish,
            "coursesWithdrawn": m.courses_withdrawn,
            "admittedBy": m.admitted_by,
            "admittedAt": m.admitted_at.isoformat(),
        }
        for m in members(prune=True)
    ]


class Command(BaseCommand):
    help = "List the members of this hub's federation."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args: Any, **options: Any) -> None:
        if not is_hub():
            raise CommandError("this instance is not the federation's hub")
        data = rows()
        if options["as_json"]:
            self.stdout.write(json.dumps(data, ensure_ascii=False))
            return
        for row in data:
            self.stdout.write(
                f"{row['code']}: {row['status']} ({row['source']}), keys {row['keysUrl']}, "
                f"admitted by {row['admittedBy']} at {row['admittedAt']}"
                + (", courses withdrawn" if row["coursesWithdrawn"] else "")
            )
