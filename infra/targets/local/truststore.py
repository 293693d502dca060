"""The providers' CAs in the local Keycloak's truststore.

A provider of a tenant's spec may name the CA that signed its TLS certificate (``ca``: a PEM
file beside the spec, or an absolute path). Keycloak reads its truststore only when it starts
(``--truststore-paths``, a folder scanned for PEM files), so the local target keeps one file
per tenant, ``keycloak/truststore/<code>.pem``, holding that tenant's providers' CAs, and
restarts Keycloak only when the content of one of those files changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from infra.errors import KitError
from infra.home import make_private_dir
from infra.spec import TenantSpec


def provider_cas(specs: Sequence[TenantSpec]) -> dict[str, bytes]:
    """Each tenant's providers' CAs as one PEM bundle (empty when none names a CA).

    A CA that is missing, unreadable or holds no certificate stops here, in one line naming
    the spec, the field and the provider, before anything is written anywhere."""
    bundles: dict[str, bytes] = {}
    for spec in specs:
        certificates: dict[bytes, None] = {}
        for index, provider in enumerate(spec.spec.identity.providers):
            path = spec.provider_ca(provider)
            if path is None:
                continue
            where = f"{spec.source}: spec.identity.providers[{index}].ca"
            for certificate in _read_certificates(path, where, provider.alias):
                certificates[certificate] = None
        bundles[spec.code] = b"".join(certificates)
    return bundles


def _read_certificates(path: Path, where: str, alias: str) -> list[bytes]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KitError(
            f"{where}: cannot read the CA of provider {alias!r} at {path} ({exc.strerror})"
        ) from None
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError:
        found = []
    if not found:
        raise KitError(
            f"{where}: the CA of provider {alias!r} at {path} holds no PEM certificate "
            "(expected -----BEGIN CERTIFICATE-----)"
        )
    return [c.public_bytes(serialization.Encoding.PEM) for c in found]


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
