"""``manage.py federation_member {suspend,resume,remove} CODE [--withdraw-courses] [--by WHO]``
(the hub): change a member's standing. It takes effect at the member's next call.

- ``suspend``: its calls get 401; its courses stay listed unless ``--withdraw-courses``, which
  retires them on the hub until ``resume``;
- ``resume``: active again, with the courses the suspension withdrew (except those their
  origin withdrew meanwhile);
- ``remove``: the membership is deleted and its courses retired on the hub (a new admission
  is needed, e.g. for a changed keys URL).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenant_portal.federation.documents import one_line
from tenant_portal.federation.membership import (
    MembershipError,
    member_remove,
    member_resume,
    member_suspend,
)


class Command(BaseCommand):
    help = "Suspend, resume or remove a member of this hub's federation."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["suspend", "resume", "remove"])
        parser.add_argument("code", help="The member's code.")
        parser.add_argument(
            "--withdraw-courses",
            action="store_true",
            help="suspend: retire its courses on the hub until it is resumed.",
        )
        parser.add_argument("--by", default="", help="Who makes the change (logged).")

    def handle(self, *args: Any, **options: Any) -> None:
        action, code, by = options["action"], options["code"], options["by"]
        try:
            if action == "suspend":
                row = member_suspend(code=code, withdraw_courses=options["withdraw_courses"], by=by)
                withdrawn = ", its courses withdrawn" if row.courses_withdrawn else ""
                self.stdout.write(f"{code}: suspended{withdrawn}")
            elif action == "resume":
                member_resume(code=code, by=by)
                self.stdout.write(f"{code}: active")
            else:
                retired = member_remove(code=code, by=by)
                self.stdout.write(f"{code}: removed, {retired} course(s) retired")
        except MembershipError as exc:
            raise CommandError(one_line(str(exc))) from None
