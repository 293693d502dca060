"""``manage.py prepare_portal``: everything a portal needs before it serves, in one process.

Migrates the database, collects static files and syncs the site with the rendered spec. The
kit runs it before every start; each step does nothing when there is nothing to do.
"""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Migrate, collect static files and sync the site with the rendered spec."

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        call_command("sync_site", verbosity=options.get("verbosity", 1))
