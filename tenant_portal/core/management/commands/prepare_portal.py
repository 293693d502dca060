"""``manage.py prepare_portal``: everything a portal needs before it serves, in one process.

Compiles the portal's translations, migrates the database, collects static files and syncs the
site with the rendered spec. The kit runs it before every start, from the portal's data folder
(compilemessages also compiles any `locale` folder below the working directory); each step does
nothing when there is nothing to do.
"""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Migrate, collect static files and sync the site with the rendered spec."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--skip-static",
            action="store_true",
            help="Do not collect static files (the kit collected them once for every portal).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("compilemessages", verbosity=0)
        call_command("migrate", interactive=False, verbosity=0)
        if not options["skip_static"]:
            call_command("collectstatic", interactive=False, verbosity=0)
        call_command("sync_site", verbosity=options.get("verbosity", 1))
        # The sample framework until the hub's arrives by federation.
        call_command("load_competencies", if_empty=True, verbosity=0)
        call_command("federation_backfill", verbosity=0)
