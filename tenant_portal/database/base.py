"""The engine ``tenant_portal.database``: Django's PostgreSQL backend, the URL read from the
file named by the connection's ``URL_FILE`` before each new connection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base

URL_FILE = "URL_FILE"
_FROM_URL = ("NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        path = self.settings_dict.get(URL_FILE)
        if path:
            fresh = url_settings(Path(path))
            # The URL's options (sslmode) over those the settings gave.
            fresh["OPTIONS"] = {**self.settings_dict.get("OPTIONS", {}), **fresh.get("OPTIONS", {})}
            self.settings_dict.update(fresh)
        return dict(super().get_connection_params())


def url_settings(path: Path) -> dict[str, Any]:
    """The connection's settings from the URL in ``path`` (never shown: it holds a password)."""
    try:
        url = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ImproperlyConfigured(
            f"DATABASE_URL_FILE: cannot read {path} ({exc.strerror})"
        ) from None
    try:
        parsed = environ.Env.db_url_config(url)
    except Exception as exc:
        raise ImproperlyConfigured(
            f"DATABASE_URL_FILE: {path} cannot be parsed ({exc.__class__.__name__})"
        ) from None
    return {key: parsed[key] for key in _FROM_URL if key in parsed}
