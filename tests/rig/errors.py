"""The rig's one error type."""

from __future__ import annotations


class RigError(RuntimeError):
    """A part of the test rig (CA, names, proxy, browser trust) could not be set up or run.

    The message says what to do about it, e.g. which Debian package to install.
    """
