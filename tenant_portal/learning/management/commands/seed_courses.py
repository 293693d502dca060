"""``manage.py seed_courses [--if-empty]``: fill the portal with the tenant's demo courses."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenant_portal.catalogue.models import CoursePage
from tenant_portal.competencies.services import sample_posts_load
from tenant_portal.learning.seed import SeedError, seed


class Command(BaseCommand):
    help = "Create the tenant's demo courses (skips courses whose slug exists)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when the portal has courses."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["if_empty"] and CoursePage.objects.exists():
            self.stdout.write("courses exist already; nothing seeded")
            return
        try:
            created = seed(settings.PORTAL.tenant)
        except SeedError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{created} demo courses created for {settings.PORTAL.tenant}")
        if settings.PORTAL.federation.is_hub:
            # The hub's demo posts, which its tenants sync with its framework.
            posts = sample_posts_load()
            self.stdout.write(f"{posts} demo posts created")
