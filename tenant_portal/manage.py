"""``python -m tenant_portal.manage``: Django's management commands for one portal."""

from __future__ import annotations

import os
import sys

from tenant_portal.settings.contract import SettingsError


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tenant_portal.settings.dev")
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except SettingsError as exc:
        # A deployment's mistake, not the program's: one line, no traceback.
        sys.exit(f"settings: {exc}")


if __name__ == "__main__":
    main()
