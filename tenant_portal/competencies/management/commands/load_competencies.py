"""``manage.py load_competencies [PATH]``: load a competency framework (default: the sample)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenant_portal.competencies.models import Framework
from tenant_portal.competencies.services import SAMPLE, CompetencyFileError, framework_load


class Command(BaseCommand):
    help = "Load a competency framework (areas, themes, sub-themes, levels) from a JSON file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", nargs="?", type=Path, default=SAMPLE)
        parser.add_argument(
            "--if-empty", action="store_true", help="Only when no framework is loaded yet."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["if_empty"] and Framework.objects.exists():
            return
        try:
            result = framework_load(path=options["path"])
        except CompetencyFileError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(str(result))
