"""WSGI entry point (gunicorn)."""

from __future__ import annotations

import os
import sys

from django.core.wsgi import get_wsgi_application

from tenant_portal.settings.contract import SettingsError

# gunicorn stops the whole server, instead of starting workers over and over, when a worker
# exits with this code ("Worker failed to boot").
WORKER_BOOT_ERROR = 3

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tenant_portal.settings.dev")
try:
    application = get_wsgi_application()
except SettingsError as exc:
    print(f"settings: {exc}", file=sys.stderr, flush=True)
    sys.exit(WORKER_BOOT_ERROR)
