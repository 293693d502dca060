"""The kit's error type: a message a person can act on, shown as one line by the CLI."""

from __future__ import annotations


class KitError(Exception):
    """Raised for any failure the operator can fix; never carries a secret."""
