"""A certificate authority made by the test session, so TLS verification stays on everywhere.

Production Keycloak and the portals are reached at ``https://<real name>`` in the tests, the way
people reach them; a CA of the session's own signs their certificates and every client is told
to trust it (never ``verify=False``, never ``ignore_https_errors``), so a wrong name, a missing
SubjectAltName or a broken chain fails a test as it would fail a user.

How each client trusts ``CertificateAuthority.bundle_path``:

- httpx in the test process: ``NameMap.httpx_client(ca)`` (it trusts this CA alone);
- Python in a subprocess (a portal under gunicorn calling Keycloak with ``requests`` or
  ``httpx``, ``urllib``): the environment from ``python_trust_env``, whose bundle is the
  machine's CAs plus this one, since OpenSSL reads ``SSL_CERT_FILE`` and ``requests`` reads
  ``REQUESTS_CA_BUNDLE`` (it ignores ``SSL_CERT_FILE`` and would use certifi);
- Chromium: an NSS database under a private ``HOME`` (``tests.rig.chromium``);
- Keycloak 26: ``kc.sh start --truststore-paths=<bundle_path>`` (PEM files are accepted, and
  the JVM's default CAs stay trusted too); a plain JVM needs a PKCS12 trust store made with
  ``keytool -importcert -noprompt -storetype PKCS12 -alias rig-ca -file <bundle_path>
  -keystore trust.p12 -storepass changeit`` and ``-Djavax.net.ssl.trustStore=trust.p12
  -Djavax.net.ssl.trustStorePassword=changeit``.

Keys are P-256 (fast to make, accepted by OpenSSL, NSS and Java); certificates live for two days
by default, long enough for any session and short enough to be useless if one leaks.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.rig.errors import RigError

VALIDITY = datetime.timedelta(days=2)
# Backdated a little, so a clock that differs by seconds between processes cannot reject a
# certificate made a moment ago as "not yet valid".
BACKDATE = datetime.timedelta(hours=1)
CA_COMMON_NAME = "Karmayogi test session CA"
# Where Debian keeps the machine's CAs; Python's own default is asked when it is absent.
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA whose certificate is at ``bundle_path`` and whose key never leaves ``folder``."""

    folder: Path
    bundle_path: Path
    key_path: Path
    _certificate: x509.Certificate = field(repr=False, compare=False)
    _key: ec.EllipticCurvePrivateKey = field(repr=False, compare=False)

    @classmethod
    def create(
        cls,
        folder: Path,
        *,
        common_name: str = CA_COMMON_NAME,
        validity: datetime.timedelta = VALIDITY,
    ) -> CertificateAuthority:
        """Make a new CA in ``folder`` (created if missing): ``ca.pem`` and ``ca.key``."""
        folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        public = key.public_key()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + validity)
            # path_length=0: it signs leaves only, never another CA.
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        bundle_path = folder / "ca.pem"
        key_path = folder / "ca.key"
        _write_key(key_path, key)
        bundle_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return cls(folder, bundle_path, key_path, certificate, key)

    def issue(
        self, names: list[str], *, validity: datetime.timedelta = VALIDITY
    ) -> tuple[Path, Path]:
        """A server certificate for ``names`` (DNS names or IP addresses): (cert path, key path).

        Every name goes into the SubjectAltName, which is all that browsers and OpenSSL check;
        the first is also the common name, for people reading logs. The files are named after
        the first name and a serial, so issuing twice for one name never overwrites.
        """
        if not names:
            raise RigError("a certificate needs at least one name")
        key = ec.generate_private_key(ec.SECP256R1())
        serial = x509.random_serial_number()
        now = _now()
        alt_names: list[x509.GeneralName] = [_general_name(name) for name in names]
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])]))
            .issuer_name(self._certificate.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - BACKDATE)
            # Never past the CA: a leaf outliving its issuer is rejected by some verifiers.
            .not_valid_after(min(now + validity, self._certificate.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        stem = f"{_file_stem(names[0])}-{serial:x}"[:80]
        cert_path = self.folder / f"{stem}.pem"
        key_path = self.folder / f"{stem}.key"
        _write_key(key_path, key)
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return cert_path, key_path

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA alone and checks host names."""
        return ssl.create_default_context(cafile=str(self.bundle_path))


def python_trust_env(ca: CertificateAuthority, folder: Path | None = None) -> dict[str, str]:
    """Environment variables making Python (and curl) in a subprocess trust the machine's CAs
    and ``ca``; merge them into the subprocess's environment.

    Writes ``trusted.pem`` (the system bundle followed by the CA) into ``folder`` (default: the
    CA's folder). A combined bundle, not the CA alone, because a portal may still talk to
    servers the rig did not make.
    """
    folder = ca.folder if folder is None else folder
    folder.mkdir(parents=True, exist_ok=True)
    system = system_bundle().read_text(encoding="ascii")
    bundle = folder / "trusted.pem"
    ours = ca.bundle_path.read_text(encoding="ascii")
    bundle.write_text(f"{system.rstrip()}\n{ours}", encoding="ascii")
    path = str(bundle)
    return {"SSL_CERT_FILE": path, "REQUESTS_CA_BUNDLE": path, "CURL_CA_BUNDLE": path}


def system_bundle() -> Path:
    """The machine's CA bundle: Debian's, else the file OpenSSL was built to read."""
    if SYSTEM_BUNDLE.is_file():
        return SYSTEM_BUNDLE
    default = ssl.get_default_verify_paths()
    for candidate in (default.cafile, default.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise RigError(
        f"no system CA bundle at {SYSTEM_BUNDLE} or OpenSSL's default; "
        "install it with `apt-get install ca-certificates`"
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("._") or "leaf"


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write a private key readable by its owner alone (nginx and Keycloak run as root here)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
