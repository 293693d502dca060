"""The rig with real names and TLS (tests/rig): every kind of client reaches
``https://app.rig.test`` through the TLS proxy with certificate checks on, and fails without the
session's CA, so these tests would notice a client that silently stopped verifying."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography import x509
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from tests.rig import (
    CertificateAuthority,
    NameMap,
    RigError,
    Route,
    TlsProxy,
    launch_options,
    nss_home,
    python_trust_env,
)
from tests.rig.ca import system_bundle

APP = "app.rig.test"
OTHER = "other.rig.test"
BACKEND_HOST = "127.0.1.1"
TIMEOUT = 15.0

# Run by a wrapped subprocess: where the name resolves, then what urllib, requests and httpx
# (each with its default trust) get from the proxy, or the error they raise.
CLIENT_SCRIPT = """
import json, socket, sys, urllib.request
import httpx, requests
url = sys.argv[1]
result = {"address": socket.gethostbyname(sys.argv[2])}
fetches = {
    "urllib": lambda: urllib.request.urlopen(url, timeout=10).read(),
    "requests": lambda: requests.get(url, timeout=10).content,
    "httpx": lambda: httpx.get(url, timeout=10).content,
}
for client, fetch in fetches.items():
    try:
        result[client] = json.loads(fetch())["headers"]["Host"]
    except Exception as error:
        result[client] = f"error: {error!r}"
print(json.dumps(result))
"""


class EchoHandler(BaseHTTPRequestHandler):
    """A plain-HTTP backend: GET echoes the request as JSON, ``GET /bytes?n=`` streams n bytes,
    POST answers with the body's length and SHA-256. HTTP/1.1, so connections stay open."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/bytes":
            size = int(parse_qs(parts.query)["n"][0])
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            chunk = b"x" * 65536
            for start in range(0, size, len(chunk)):
                self.wfile.write(chunk[: size - start])
            return
        self._json({"path": self.path, "headers": dict(self.headers), "peer": self.client_address})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self._json({"length": len(body), "sha256": hashlib.sha256(body).hexdigest()})

    def _json(self, value: object) -> None:
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the tests assert on responses; a line per request is noise


@pytest.fixture(scope="module")
def backend() -> Iterator[str]:
    """The echo backend on 127.0.1.1, a free port; its URL."""
    server = ThreadingHTTPServer((BACKEND_HOST, 0), EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{BACKEND_HOST}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def proxy(
    rig_ca: CertificateAuthority,
    rig_names: NameMap,
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TlsProxy]:
    """``https://app.rig.test`` in front of the backend. ``other.rig.test`` maps to the same
    address but has no certificate: nginx answers it with app's, which clients must refuse."""
    address = rig_names.assign(APP)
    rig_names.add(OTHER, address)
    cert, key = rig_ca.issue([APP])
    route = Route(APP, address, cert, key, backend)
    with TlsProxy(tmp_path_factory.mktemp("rig-proxy"), [route]) as running:
        yield running


def test_ca_issues_short_lived_server_certificates(rig_ca: CertificateAuthority) -> None:
    cert_path, key_path = rig_ca.issue([APP, "127.0.1.9"])
    leaf = x509.load_pem_x509_certificate(cert_path.read_bytes())
    ca = x509.load_pem_x509_certificate(rig_ca.bundle_path.read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [APP]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.1.9"]
    assert leaf.issuer == ca.subject
    leaf.verify_directly_issued_by(ca)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= datetime.timedelta(days=3)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert key_path.stat().st_mode & 0o077 == 0
    assert rig_ca.issue([APP])[0] != cert_path, "a second certificate overwrote the first"


def test_name_map_files_and_arguments(tmp_path: Path) -> None:
    names = NameMap(tmp_path, {"Auth.Bihar.test": "127.0.1.20"})
    names.add("learn.bihar.test", "127.0.1.21")
    hosts = names.hosts_path.read_text(encoding="ascii").splitlines()
    assert hosts[:2] == ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    assert hosts[2:] == ["127.0.1.20 auth.bihar.test", "127.0.1.21 learn.bihar.test"]
    assert names.chromium_args() == [
        "--host-resolver-rules=MAP auth.bihar.test 127.0.1.20,MAP learn.bihar.test 127.0.1.21"
    ]
    wrapped = names.wrap(["java", "-version"])
    assert wrapped[-2:] == ["java", "-version"]
    assert str(names.hosts_path) in wrapped[wrapped.index("-c") + 1]
    with pytest.raises(RigError, match="not a loopback"):
        names.add("evil.test", "192.0.2.1")


def test_httpx_client_verifies_the_real_name_through_the_proxy(
    proxy: TlsProxy, rig_ca: CertificateAuthority, rig_names: NameMap
) -> None:
    with rig_names.httpx_client(rig_ca, timeout=TIMEOUT) as client:
        response = client.get(f"https://{APP}/some/page?x=1")
        assert response.status_code == 200
        assert response.url == httpx.URL(f"https://{APP}/some/page?x=1")
        seen = response.json()
        assert seen["path"] == "/some/page?x=1"
        headers = seen["headers"]
        assert headers["Host"] == APP
        assert headers["X-Forwarded-Proto"] == "https"
        assert headers["X-Forwarded-Host"] == APP
        assert headers["X-Forwarded-Port"] == "443"
        assert headers["X-Forwarded-For"].startswith("127.")
        # Connections to the backend are kept alive: the second request comes on the same one.
        again = client.get(f"https://{APP}/").json()
        assert again["peer"] == seen["peer"]
        # Same address, but the certificate does not name other.rig.test: refused.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get(f"https://{OTHER}/")


def test_httpx_client_refuses_a_certificate_from_another_ca(
    proxy: TlsProxy, rig_names: NameMap, tmp_path: Path
) -> None:
    stranger = CertificateAuthority.create(tmp_path)
    with (
        rig_names.httpx_client(stranger, timeout=TIMEOUT) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get(f"https://{APP}/")


def test_proxy_streams_large_bodies_both_ways(
    proxy: TlsProxy, rig_ca: CertificateAuthority, rig_names: NameMap
) -> None:
    upload = os.urandom(20 * 1024 * 1024)
    with rig_names.httpx_client(rig_ca, timeout=TIMEOUT) as client:
        answer = client.post(f"https://{APP}/upload", content=upload).json()
        assert answer == {"length": len(upload), "sha256": hashlib.sha256(upload).hexdigest()}
        size = 50 * 1024 * 1024
        with client.stream("GET", f"https://{APP}/bytes?n={size}") as response:
            assert response.status_code == 200
            assert sum(len(chunk) for chunk in response.iter_bytes()) == size


def test_wrapped_subprocess_resolves_and_trusts_with_the_env(
    proxy: TlsProxy, rig_ca: CertificateAuthority, rig_names: NameMap
) -> None:
    base = {k: v for k, v in os.environ.items() if not k.endswith(("_CA_BUNDLE", "SSL_CERT_FILE"))}
    command = rig_names.wrap([sys.executable, "-c", CLIENT_SCRIPT, f"https://{APP}/", APP])

    def run(env: dict[str, str]) -> dict[str, str]:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    trusted = run({**base, **python_trust_env(rig_ca)})
    assert trusted == {
        "address": rig_names.address(APP),
        "urllib": APP,
        "requests": APP,
        "httpx": APP,
    }
    # The machine's CAs alone: every client refuses, so the pass above is the CA's doing.
    system = str(system_bundle())
    untrusted = run({**base, "SSL_CERT_FILE": system, "REQUESTS_CA_BUNDLE": system})
    assert untrusted["address"] == rig_names.address(APP)
    for client in ("urllib", "requests", "httpx"):
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted[client], (client, untrusted[client])


def test_chromium_trusts_the_ca_through_nss(
    proxy: TlsProxy, rig_ca: CertificateAuthority, rig_names: NameMap, tmp_path: Path
) -> None:
    trusting = nss_home(rig_ca, tmp_path / "trusting")
    bare = tmp_path / "bare"
    bare.mkdir()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**launch_options(rig_names, trusting))
        try:
            page = browser.new_page()
            response = page.goto(f"https://{APP}/from-chromium", timeout=TIMEOUT * 1000)
            assert response is not None and response.status == 200
            headers = json.loads(page.locator("body").inner_text())["headers"]
            assert headers["Host"] == APP
            assert headers["X-Forwarded-Proto"] == "https"
        finally:
            browser.close()
        # A HOME without the CA: the same page fails, so trust came from the NSS database.
        browser = playwright.chromium.launch(**launch_options(rig_names, bare))
        try:
            with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
                browser.new_page().goto(f"https://{APP}/", timeout=TIMEOUT * 1000)
        finally:
            browser.close()
