"""The providers' CAs in the local Keycloak's truststore.

A provider of a tenant's spec may name the CA that signed its TLS certificate (``ca``: a PEM
file beside the spec, or an absolute path). Keycloak reads its truststore only when it starts
(``--truststore-paths``, a folder scanned for PEM files), so the local target keeps one file
per tenant, ``keycloak/truststore/<code>.pem``, holding that tenant's providers' CAs, and
restarts Keycloak only when the content of one of those files changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.home import make_private_dir
from infra.targets.trust import provider_cas

__all__ = ["LocalTruststore", "provider_cas"]


@dataclass(frozen=True)
class LocalTruststore:
    """The folder Keycloak scans for trusted CAs: one PEM file per tenant that has any."""

    folder: Path

    def path(self, code: str) -> Path:
        return self.folder / f"{code}.pem"

    def update(self, bundles: Mapping[str, bytes]) -> bool:
        """Make each tenant's file hold its bundle (none when empty); True if any changed."""
        changed = False
        for code, bundle in bundles.items():
            path = self.path(code)
            live = path.read_bytes() if path.is_file() else b""
            if live == bundle:
                continue
            changed = True
            if bundle:
                make_private_dir(self.folder)
                temporary = path.with_suffix(".pem.new")
                temporary.write_bytes(bundle)
                temporary.replace(path)
            else:
                path.unlink(missing_ok=True)
        return changed

    def remove(self, codes: Iterable[str]) -> None:
        """Forget the tenants' CAs (Keycloak keeps trusting them until it restarts)."""
        for code in codes:
            self.path(code).unlink(missing_ok=True)
