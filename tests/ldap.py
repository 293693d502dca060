"""A private OpenLDAP for the tests: Debian's ``slapd`` with its own config and data folder.

``running_slapd`` writes a ``slapd.conf`` (the MDB backend and the stock schemas), starts
slapd in the foreground on a free loopback port, loads a small state directory (officers in
``ou=people``, departments as ``groupOfNames`` in ``ou=groups``) and stops it when the block
ends. The machine's own slapd instance, if any, is never used or touched.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from infra.net import free_port, port_is_free

SLAPD = Path("/usr/sbin/slapd")
SCHEMAS = Path("/etc/ldap/schema")
MODULES = Path("/usr/lib/ldap")
HOST = "127.0.0.1"
BASE_DN = "dc=state,dc=example"
PEOPLE_DN = f"ou=people,{BASE_DN}"
GROUPS_DN = f"ou=groups,{BASE_DN}"
READER_DN = f"cn=keycloak,{BASE_DN}"
ADMIN_DN = f"cn=admin,{BASE_DN}"  # slapd's root DN: may write passwords


class LdapError(RuntimeError):
    """The test slapd could not be found, started or filled."""


@dataclass(frozen=True)
class Officer:
    uid: str
    password: str = field(repr=False)
    email: str
    title: str  # the post, e.g. "Block Development Officer"
    groups: tuple[str, ...]  # the cn of each department group


@dataclass
class LdapServer:
    """A running slapd; Keycloak binds as ``reader_dn`` with ``reader_password``."""

    port: int
    folder: Path
    reader_password: str = field(repr=False)
    root_password: str = field(repr=False)
    process: subprocess.Popen[bytes] | None = None
    ldaps_port: int | None = None  # with a certificate: ldaps on this port too

    @property
    def url(self) -> str:
        return f"ldap://{HOST}:{self.port}"

    @property
    def ldaps_url(self) -> str:
        if self.ldaps_port is None:
            raise LdapError("this slapd was started without a certificate")
        return f"ldaps://{HOST}:{self.ldaps_port}"

    def stop(self) -> None:
        """Stop slapd (the directory "goes away"); the data folder stays for ``start``."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def start(self) -> None:
        """Start slapd on its port and wait until it answers."""
        if self.process is not None:
            return
        log = (self.folder / "slapd.log").open("ab")
        urls = f"{self.url}/" + (f" {self.ldaps_url}/" if self.ldaps_port else "")
        self.process = subprocess.Popen(
            [str(SLAPD), "-f", str(self.folder / "slapd.conf"), "-h", urls, "-d", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        for _ in range(200):
            if self.process.poll() is not None:
                raise LdapError(f"slapd exited: {(self.folder / 'slapd.log').read_text()[-800:]}")
            ports = [self.port] + ([self.ldaps_port] if self.ldaps_port else [])
            if not any(port_is_free(port) for port in ports):
                return
            time.sleep(0.05)
        raise LdapError("slapd did not listen within 10 s")

    def add(self, ldif: str) -> None:
        done = subprocess.run(
            [
                "ldapadd",
                "-x",
                "-H",
                self.url,
                "-D",
                ADMIN_DN,
                "-w",
                self.root_password,
            ],
            input=ldif.encode(),
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise LdapError(f"ldapadd failed: {done.stderr.decode().strip()}")

    def binds(self, dn: str, password: str) -> bool:
        """Whether the directory accepts ``password`` for ``dn`` (a simple bind)."""
        done = subprocess.run(
            ["ldapwhoami", "-x", "-H", self.url, "-D", dn, "-w", password],
            capture_output=True,
            check=False,
        )
        return done.returncode == 0


def _config(folder: Path, root_password: str, tls: tuple[Path, Path] | None) -> str:
    schemas = "\n".join(
        f"include {SCHEMAS / name}.schema" for name in ("core", "cosine", "inetorgperson", "nis")
    )
    certificate = (
        f"TLSCertificateFile {tls[0]}\nTLSCertificateKeyFile {tls[1]}\n" if tls is not None else ""
    )
    return f"""{schemas}
{certificate}modulepath {MODULES}
moduleload back_mdb
pidfile {folder / "slapd.pid"}
argsfile {folder / "slapd.args"}

database mdb
suffix "{BASE_DN}"
rootdn "cn=admin,{BASE_DN}"
rootpw {root_password}
directory {folder / "data"}
index objectClass eq
# Keycloak's reader may read everything but passwords, which it may only bind with.
access to attrs=userPassword
  by dn.exact="cn=admin,{BASE_DN}" write
  by anonymous auth
  by * none
access to *
  by dn.exact="{READER_DN}" read
  by * none
"""


def directory_ldif(officers: Sequence[Officer], reader_password: str) -> str:
    """The state's directory: its base, the reader, the officers and their departments."""
    entries = [
        f"dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: state\no: State",
        f"dn: {PEOPLE_DN}\nobjectClass: organizationalUnit\nou: people",
        f"dn: {GROUPS_DN}\nobjectClass: organizationalUnit\nou: groups",
        f"dn: {READER_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: keycloak\nuserPassword: {reader_password}",
    ]
    for officer in officers:
        first, _, last = officer.uid.partition(".")
        entries.append(
            f"dn: uid={officer.uid},{PEOPLE_DN}\nobjectClass: inetOrgPerson\n"
            f"uid: {officer.uid}\ncn: {first.title()} {last.title()}\n"
            f"givenName: {first.title()}\nsn: {last.title() or first.title()}\n"
            f"mail: {officer.email}\ntitle: {officer.title}\nuserPassword: {officer.password}"
        )
    groups = sorted({g for officer in officers for g in officer.groups})
    for group in groups:
        members = "\n".join(
            f"member: uid={o.uid},{PEOPLE_DN}" for o in officers if group in o.groups
        )
        entries.append(
            f"dn: cn={group},{GROUPS_DN}\nobjectClass: groupOfNames\ncn: {group}\n{members}"
        )
    return "\n\n".join(entries) + "\n"


@contextmanager
def running_slapd(
    folder: Path, officers: Sequence[Officer], tls: tuple[Path, Path] | None = None
) -> Iterator[LdapServer]:
    """slapd with ``officers`` in its directory, on a free loopback port, for the block;
    given ``tls`` (a certificate and its key, PEM), it serves ldaps on a second port too."""
    if not SLAPD.is_file() or shutil.which("ldapadd") is None:
        raise LdapError(
            "slapd or ldapadd is missing; install them with `make test-deps` "
            "(Debian packages slapd and ldap-utils)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    root_password = secrets.token_urlsafe(18)
    (folder / "slapd.conf").write_text(_config(folder, root_password, tls), encoding="utf-8")
    server = LdapServer(free_port(HOST), folder, secrets.token_urlsafe(18), root_password)
    if tls is not None:
        server.ldaps_port = free_port(HOST)
    server.start()
    try:
        server.add(directory_ldif(officers, server.reader_password))
        yield server
    finally:
        server.stop()
