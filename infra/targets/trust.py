"""The CAs the tenants' providers name (``ca``), read where the target renders or applies.

Keycloak has one truststore, built when it starts (``truststore-paths``); each target hands
these bundles to it its own way: the local target keeps them in a folder of its Keycloak and
restarts it on change, the vm target copies them to the host beside ``keycloak.conf``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from infra.errors import KitError
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
