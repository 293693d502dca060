"""The identity package's error type."""

from __future__ import annotations


class IdentityError(Exception):
    """A Keycloak operation failed; the message names the tenant and the object."""
