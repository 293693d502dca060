"""The portal's settings contract, checked on the kit's side of the boundary.

The portal owns the contract: a JSON Schema in ``tenant_portal/settings/`` of the settings it
accepts. The kit never imports the portal's code; it reads that one file and checks every
rendered settings object against it, so a setting the portal would refuse at start is refused
here first, naming the tenant and the setting.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from infra.errors import KitError
from infra.render.inputs import map_secrets

SCHEMA_FILE = "portal-settings.schema.json"
# Stands for a secret the store only names: whatever the schema says of its value, it cannot
# be checked before the target puts the value in place.
_UNRESOLVED = "\x00secret"


class PortalSettingsError(KitError):
    """A rendered portal setting breaks the portal's contract."""


def schema_path() -> Path:
    """The contract's file, found without importing the portal package."""
    found = importlib.util.find_spec("tenant_portal")
    if found is None or not found.submodule_search_locations:
        raise PortalSettingsError("the tenant_portal package is not installed beside the kit")
    return Path(next(iter(found.submodule_search_locations))) / "settings" / SCHEMA_FILE


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _where(error: ValidationError) -> str:
    text = ""
    for part in error.absolute_path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(settings)"


def validate_portal_settings(settings: Mapping[str, Any], *, source: str) -> None:
    """Raise one line naming ``source`` and the first setting the contract refuses."""
    instance = map_secrets(
        dict(settings), lambda s: s.value if s.value is not None else _UNRESOLVED
    )
    for error in sorted(_validator().iter_errors(instance), key=lambda e: list(e.path)):
        if error.instance == _UNRESOLVED:
            continue
        secret = isinstance(error.schema, dict) and error.schema.get("writeOnly") is True
        message = (
            f"breaks the contract's {error.validator} rule ({error.validator_value!r}); "
            "the value is a secret and not shown"
            if secret
            else error.message
        )
        raise PortalSettingsError(f"{source}: {_where(error)}: {message}")
