"""Real host names (``auth.bihar.test``) on loopback addresses the suite picks.

The production and cross-deployment tests reach every service by the name a person would use,
so cookies, redirects, issuer URLs and certificates are checked for real; nothing on the machine
resolves those names, so each client is told where they are:

- any program (Keycloak's JVM, gunicorn, ``python -c``): ``NameMap.wrap(command)`` runs it in a
  private mount namespace whose ``/etc/hosts`` is the map's hosts file, so glibc (and with it
  Python, Java and curl) resolves the names there; the machine's own ``/etc/hosts`` is never
  touched. A JVM can also be given ``-Djdk.net.hosts.file=<NameMap.hosts_path>`` instead
  (Java then resolves through that file alone: keep ``localhost`` in it, as the map does);
- Chromium: ``NameMap.chromium_args()`` (``--host-resolver-rules``), since it has its own
  resolver and reads no hosts file under Playwright;
- httpx in the test process: ``NameMap.httpx_client(ca)``, which connects to the mapped address
  while sending the real Host header and TLS server name and checking the certificate for the
  real name;
- trust in the session's CA: see ``tests.rig.ca`` (Keycloak takes
  ``--truststore-paths=<CertificateAuthority.bundle_path>``; subprocesses running Python take
  ``python_trust_env``).

Addresses come from 127.0.1.0/24 (the local federation uses 127.0.0.2-127.0.0.9, the tests'
kit homes 127.0.2.2 upwards: ``local_address_env``); fixed ones below 127.0.1.64, assigned
ones above.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import shutil
import socket
import ssl
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.rig.ca import CertificateAuthority
from tests.rig.errors import RigError

RIG_NETWORK = ipaddress.ip_network("127.0.1.0/24")
# Kept in every hosts file: programs (and Java's resolver above all) expect localhost to resolve.
LOCALHOST_LINES = ("127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback")
# The mount happens inside the new namespace only (unshare makes its mounts private); `exec`
# then replaces the shell by the command, so signals and the exit code pass unchanged.
WRAP_SCRIPT = 'mount --bind {hosts} /etc/hosts && exec "$@"'


# 127.0.1.1-63 are kept for the tests that name fixed addresses (tests/production: .20-.21;
# tests/federation: .40-.45); `assign` draws from the rest.
FIRST_ASSIGNED = 64


def _worker_hosts() -> list[ipaddress.IPv4Address]:
    """The addresses ``assign`` may pick in this session: those above the fixed ones, and
    under parallel workers (pytest-xdist's ``gwN``) this worker's own slice of them, so two
    sessions never pick one address before either listens on it."""
    hosts = [h for h in RIG_NETWORK.hosts() if int(h) & 0xFF >= FIRST_ASSIGNED]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or count <= 1:
        return hosts  # type: ignore[return-value]
    share = len(hosts) // count
    start = int(worker[2:]) * share
    return hosts[start : start + share]  # type: ignore[return-value]


def local_address_env() -> dict[str, str]:
    """``KARMAYOGI_LOCAL_ADDRESS`` for a kit home this session starts portals in: 127.0.2.2
    upwards, 127.0.3.2 on the second parallel worker, and so on. So the portals of two workers'
    homes (and of the developer's own ``make up``, on 127.0.0.2) never share an address."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) if worker.startswith("gw") else 0
    return {"KARMAYOGI_LOCAL_ADDRESS": f"127.0.{2 + index}.2"}


class NameMap:
    """Host names mapped to loopback addresses, with a hosts file kept in step at ``hosts_path``.

    The hosts file is rewritten in place on every change, so programs already started through
    ``wrap`` (whose ``/etc/hosts`` is a bind mount of that very file) see names added later.
    """

    def __init__(self, folder: Path, names: Mapping[str, str] | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.hosts_path = folder / "hosts"
        self._names: dict[str, str] = {}
        for name, address in (names or {}).items():
            self._names[_normal(name)] = _loopback(address)
        self._write_hosts()

    @property
    def names(self) -> dict[str, str]:
        """A copy of the map: name → address."""
        return dict(self._names)

    def add(self, name: str, address: str) -> str:
        """Map ``name`` to ``address`` (replacing any earlier address); returns the address."""
        self._names[_normal(name)] = _loopback(address)
        self._write_hosts()
        return self._names[_normal(name)]

    def assign(self, name: str, *, port: int = 443) -> str:
        """Map ``name`` to the first 127.0.1.x that the map does not use yet and on which
        ``port`` is free at this moment (another test session on the machine may hold it)."""
        name = _normal(name)
        if name in self._names:
            return self._names[name]
        taken = set(self._names.values())
        for host in _worker_hosts():
            address = str(host)
            if address not in taken and _port_free(address, port):
                return self.add(name, address)
        raise RigError(f"no address in {RIG_NETWORK} has port {port} free for {name}")

    def address(self, name: str) -> str:
        """The address ``name`` maps to; a RigError when it is not mapped."""
        try:
            return self._names[_normal(name)]
        except KeyError:
            raise RigError(f"{name} is not in the name map ({', '.join(self._names)})") from None

    def hosts_text(self) -> str:
        """The hosts file's content: localhost, then one line per mapped name."""
        lines = [*LOCALHOST_LINES, *(f"{addr} {name}" for name, addr in self._names.items())]
        return "\n".join(lines) + "\n"

    def wrap(self, command: list[str]) -> list[str]:
        """``command`` run with the map's hosts file as ``/etc/hosts``, in a private mount
        namespace (``unshare --mount``; needs root, which the suite has here)."""
        unshare = shutil.which("unshare")
        if unshare is None:
            raise RigError("`unshare` is missing; install it with `apt-get install util-linux`")
        script = WRAP_SCRIPT.format(hosts=shlex.quote(str(self.hosts_path)))
        return [unshare, "--mount", "--", "sh", "-c", script, "sh", *command]

    def host_resolver_rules(self) -> str:
        """The value of Chromium's ``--host-resolver-rules``: ``MAP name addr`` per name."""
        return ",".join(f"MAP {name} {address}" for name, address in self._names.items())

    def chromium_args(self) -> list[str]:
        """Chromium's command-line arguments resolving the mapped names (none when empty)."""
        rules = self.host_resolver_rules()
        return [f"--host-resolver-rules={rules}"] if rules else []

    def httpx_transport(
        self, ca: CertificateAuthority | None = None, **options: Any
    ) -> MappedTransport:
        """An httpx transport resolving the mapped names, trusting ``ca`` alone (or, without
        one, httpx's default CAs); ``options`` go to each ``httpx.HTTPTransport``."""
        context = ca.ssl_context() if ca is not None else ssl.create_default_context()
        return MappedTransport(self, context, **options)

    def httpx_client(self, ca: CertificateAuthority | None = None, **options: Any) -> httpx.Client:
        """An ``httpx.Client`` over ``httpx_transport(ca)``; ``options`` go to the client."""
        return httpx.Client(transport=self.httpx_transport(ca), **options)

    def _write_hosts(self) -> None:
        # In place (truncate and write), never by rename: a bind mount holds the file's inode.
        with self.hosts_path.open("w", encoding="ascii") as file:
            file.write(self.hosts_text())

    def __repr__(self) -> str:
        return f"NameMap({self._names!r})"


class MappedTransport(httpx.BaseTransport):
    """Send requests for a mapped name to its address, like ``curl --resolve``.

    The request keeps its real URL for the caller (cookies, redirects, ``response.url``); only
    the copy handed to httpcore carries the address, with the real name as Host header and as
    the ``sni_hostname`` extension, which httpcore uses both for SNI and for checking the
    certificate. Each name gets a connection pool of its own: pooled by address alone, a
    connection verified for one name would be reused for another name on the same address.
    """

    def __init__(self, names: NameMap, ssl_context: ssl.SSLContext, **options: Any) -> None:
        self._names = names
        self._context = ssl_context
        self._options = options
        self._transports: dict[str, httpx.HTTPTransport] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        name = request.url.host
        address = self._names.names.get(name)
        transport = self._transport(name)
        if address is None:
            return transport.handle_request(request)
        extensions = dict(request.extensions)
        if request.url.scheme == "https":
            extensions["sni_hostname"] = name
        routed = httpx.Request(
            request.method,
            request.url.copy_with(host=address),
            headers=request.headers,  # carries Host: <name> already
            stream=request.stream,
            extensions=extensions,
        )
        return transport.handle_request(routed)

    def close(self) -> None:
        with self._lock:
            transports, self._transports = list(self._transports.values()), {}
        for transport in transports:
            transport.close()

    def _transport(self, name: str) -> httpx.HTTPTransport:
        with self._lock:
            if name not in self._transports:
                self._transports[name] = httpx.HTTPTransport(verify=self._context, **self._options)
            return self._transports[name]


def _normal(name: str) -> str:
    name = name.strip().rstrip(".").lower()
    if not name or any(c.isspace() or c in ",/:" for c in name):
        raise RigError(f"{name!r} is not a host name")
    return name


def _loopback(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise RigError(f"{address!r} is not an IP address") from None
    if not ip.is_loopback:
        # The rig never sends traffic off the machine.
        raise RigError(f"{address} is not a loopback address")
    return str(ip)


def _port_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True
