"""The join handshake across deployments: a tenant's signed join request, the hub's admission,
and the credentials the hub signs for the tenant. Keys are served over real HTTP by a small
server on loopback; every refusal is one line and records nothing."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from joserfc import jws
from joserfc.jwk import ECKey

from tenant_portal.federation import documents
from tenant_portal.federation.handshake import CREDENTIALS_MEDIA, JOIN_MEDIA
from tenant_portal.federation.models import Member, SeenNonce
from tenant_portal.federation.signing import published_keys
from tests.tenant_portal.conftest import set_portal

pytestmark = pytest.mark.django_db

FORGER = ECKey.generate_key("P-256", private=True, parameters={"kid": "forger"})
# What a keys URL that does not serve the signing key serves: someone else's key.
STRANGER = json.dumps(
    {"keys": [ECKey.generate_key("P-256", parameters={"kid": "stranger"}).as_dict(private=False)]}
).encode()
SECRETS = {
    "member": "goa",
    "issuer": "https://auth.hub.example/realms/hub",
    "federationClientId": "federation-goa",
    "federationClientSecret": "fed-secret-1b2c",
    "brokerClientId": "broker-goa",
    "brokerClientSecret": "broker-secret-3d4e",
}


class KeysServer:
    """Serves the published keys ``body`` under ``/goa/``, ``/hub/`` and ``/other/`` (the
    instances share the test's database, so its key), and another key under ``/empty/``."""

    def __init__(self, body: bytes) -> None:
        self.routes: dict[str, Callable[[], bytes]] = {
            "/goa/federation/v1/keys": lambda: body,
            "/hub/federation/v1/keys": lambda: body,
            "/other/federation/v1/keys": lambda: body,
            "/empty/federation/v1/keys": lambda: STRANGER,
        }
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = server.routes.get(self.path)
                body = route() if route else b"{}"
                self.send_response(200 if route else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def keys() -> Iterator[KeysServer]:
    # Read here: the server's thread cannot see the test's uncommitted rows.
    server = KeysServer(json.dumps(published_keys()).encode())
    yield server
    server.server.shutdown()


def as_goa(settings: Any, keys: KeysServer) -> None:
    set_portal(
        settings,
        tenant="goa",
        tenant_type="state",
        portal_url=f"{keys.url}/goa",
        federation={"isHub": False, "hub": "hub", "hubUrl": f"{keys.url}/hub"},
    )


def as_hub(settings: Any, keys: KeysServer) -> None:
    set_portal(
        settings,
        tenant="hub",
        tenant_type="hub",
        portal_url=f"{keys.url}/hub",
        federation={"isHub": True, "hub": "hub"},
    )


def run(*args: str, stdin: str | None = None) -> str:
    out = io.StringIO()
    options: dict[str, Any] = {"stdout": out}
    if stdin is not None:
        options["stdin"] = io.StringIO(stdin)
    call_command(*args, **options)
    return out.getvalue().strip()


def request_file(tmp_path: Path, token: str) -> str:
    path = tmp_path / f"request-{time.monotonic_ns()}.jws"
    path.write_text(token + "\n")
    return str(path)


@pytest.fixture
def request_token(settings: Any, keys: KeysServer) -> str:
    as_goa(settings, keys)
    token = run("federation_request", "--broker-redirect-uri", "https://auth.goa.example/x")
    as_hub(settings, keys)
    return token


def test_a_join_request_is_checked_then_admitted(
    request_token: str, keys: KeysServer, tmp_path: Path
) -> None:
    assert "\n" not in request_token
    header = jws.extract_compact(request_token.encode()).protected
    assert header["typ"] == JOIN_MEDIA and header["kid"]
    path = request_file(tmp_path, request_token)
    checked = json.loads(run("federation_admit", path, "--check"))
    assert checked["code"] == "goa" and checked["keysUrl"] == f"{keys.url}/goa/federation/v1/keys"
    assert checked["brokerRedirectUri"] == "https://auth.goa.example/x"
    assert not Member.objects.exists() and not SeenNonce.objects.exists()

    admitted = json.loads(run("federation_admit", path, "--admitted-by", "ops@hub"))
    assert admitted == checked
    row = Member.objects.get(code="goa")
    assert (row.source, row.status, row.admitted_by) == ("admitted", "active", "ops@hub")
    assert row.keys_url == checked["keysUrl"] and row.portal_url == f"{keys.url}/goa"
    assert SeenNonce.objects.get().nonce == checked["nonce"]


def join_payload(keys: KeysServer, **changes: Any) -> dict[str, Any]:
    payload = {
        "type": "karmayogi-join-request",
        "version": 1,
        "code": "goa",
        "name": "Goa Karmayogi",
        "tenantType": "state",
        "portalUrl": f"{keys.url}/goa",
        "keysUrl": f"{keys.url}/goa/federation/v1/keys",
        "brokerRedirectUri": "https://auth.goa.example/x",
        "publish": True,
        "nonce": "n" * 32,
        "issued": int(time.time()),
    }
    return {**payload, **changes}


def forged(payload: dict[str, Any], typ: str = JOIN_MEDIA) -> str:
    header = {"alg": "ES256", "kid": FORGER.kid, "typ": typ}
    return str(jws.serialize_compact(header, json.dumps(payload).encode(), FORGER))


def test_join_requests_are_refused_in_one_line_and_nothing_is_recorded(
    settings: Any, keys: KeysServer, tmp_path: Path
) -> None:
    as_hub(settings, keys)
    goa_keys = f"{keys.url}/goa/federation/v1/keys"
    empty = f"{keys.url}/empty/federation/v1/keys"
    signed = documents.sign(join_payload(keys), JOIN_MEDIA).split(".")
    other = documents.sign(join_payload(keys, code="kerala"), JOIN_MEDIA).split(".")
    cases = {
        "forged": (
            forged(join_payload(keys)),
            f"the keys at {goa_keys} do not include the key that signed the request",
        ),
        "keys URL not serving the key": (
            documents.sign(
                join_payload(keys, portalUrl=f"{keys.url}/empty", keysUrl=empty), JOIN_MEDIA
            ),
            f"the keys at {empty} do not include the key that signed the request",
        ),
        "tampered": (f"{signed[0]}.{other[1]}.{signed[2]}", "does not verify"),
        "stale": (
            documents.sign(join_payload(keys, issued=int(time.time()) - 4 * 86400), JOIN_MEDIA),
            "more than the 259200 s allowed",
        ),
        "from the future": (
            documents.sign(join_payload(keys, issued=int(time.time()) + 3600), JOIN_MEDIA),
            "issued in the future",
        ),
        "keys elsewhere": (
            documents.sign(join_payload(keys, keysUrl="https://evil.example/keys"), JOIN_MEDIA),
            "keysUrl is not under its portalUrl",
        ),
        "bad code": (
            documents.sign(join_payload(keys, code="Goa!"), JOIN_MEDIA),
            "code is not a tenant code",
        ),
        "the hub's own code": (
            documents.sign(join_payload(keys, code="hub"), JOIN_MEDIA),
            "hub is the hub's own code",
        ),
        "credentials instead": (
            documents.sign(join_payload(keys), CREDENTIALS_MEDIA),
            "the request is not of type karmayogi-join+jws",
        ),
        "not a JWS": ("hello", "the request is not a compact JWS"),
    }
    for name, (token, reason) in cases.items():
        for flags in (["--check"], ["--admitted-by", "ops"]):
            with pytest.raises(CommandError) as refused:
                run("federation_admit", request_file(tmp_path, token), *flags)
            message = str(refused.value)
            assert reason in message and "\n" not in message, (name, message)
    assert not Member.objects.exists() and not SeenNonce.objects.exists()


def test_a_request_is_admitted_once(
    request_token: str, settings: Any, keys: KeysServer, tmp_path: Path
) -> None:
    path = request_file(tmp_path, request_token)
    run("federation_admit", path, "--admitted-by", "ops")
    with pytest.raises(CommandError, match=r"^goa is already a member \(active\); remove it first"):
        run("federation_admit", path, "--admitted-by", "ops")
    run("federation_member", "suspend", "goa")
    with pytest.raises(CommandError, match=r"already a member \(suspended\)"):
        run("federation_admit", path, "--check")
    run("federation_member", "remove", "goa")
    with pytest.raises(CommandError, match="the request was admitted before"):
        run("federation_admit", path, "--admitted-by", "ops")  # replayed: same nonce
    assert not Member.objects.exists() and SeenNonce.objects.count() == 1


def test_a_hub_does_not_ask_to_join(settings: Any, keys: KeysServer) -> None:
    as_hub(settings, keys)
    with pytest.raises(CommandError, match="this instance is the federation's hub"):
        run("federation_request", "--broker-redirect-uri", "https://auth.goa.example/x")


@pytest.fixture
def credentials(request_token: str, settings: Any, keys: KeysServer, tmp_path: Path) -> Path:
    """Credentials the hub signed for Goa, once Goa was admitted; this process is Goa after."""
    run("federation_admit", request_file(tmp_path, request_token), "--admitted-by", "ops")
    token = run("federation_credentials", "sign", stdin=json.dumps(SECRETS))
    assert "fed-secret" not in token  # inside the payload, base64url-encoded
    path = tmp_path / "credentials.jws"
    path.write_text(token)
    as_goa(settings, keys)
    return path


def test_credentials_signed_by_the_hub_verify_on_the_tenant(
    credentials: Path, keys: KeysServer
) -> None:
    header = jws.extract_compact(credentials.read_text().encode()).protected
    assert header["typ"] == CREDENTIALS_MEDIA
    out = run("federation_credentials", "verify", str(credentials), "--hub-url", f"{keys.url}/hub")
    payload = json.loads(out)
    assert payload["type"] == "karmayogi-federation-credentials" and payload["version"] == 1
    assert (payload["hub"], payload["hubUrl"]) == ("hub", f"{keys.url}/hub")
    assert {k: payload[k] for k in SECRETS} == SECRETS
    assert payload["nonce"] and payload["issued"] <= time.time()


def test_bad_credentials_are_refused_in_one_line(
    credentials: Path, settings: Any, keys: KeysServer, tmp_path: Path
) -> None:
    good = credentials.read_text()
    head, _, signature = good.split(".")
    hub_keys = f"{keys.url}/hub/federation/v1/keys"
    payload = json.loads(jws.extract_compact(good.encode()).payload)
    as_hub(settings, keys)
    Member.objects.create(
        code="kerala", name="Kerala", portal_url="https://k.example", keys_url="https://k.example/k"
    )
    for_kerala = run(
        "federation_credentials", "sign", stdin=json.dumps({**SECRETS, "member": "kerala"})
    )
    as_goa(settings, keys)
    other_body = for_kerala.split(".")[1]
    cases = {
        "forged": (
            forged(payload, CREDENTIALS_MEDIA),
            f"{keys.url}/hub",
            f"the keys at {hub_keys} do not include the key that signed the credentials",
        ),
        "tampered": (
            f"{head}.{other_body}.{signature}",
            f"{keys.url}/hub",
            "the signature of the credentials does not verify",
        ),
        "for another member": (
            for_kerala,
            f"{keys.url}/hub",
            "the credentials are for kerala, not this instance (goa)",
        ),
        "from another hub": (
            good,
            f"{keys.url}/other",
            f"the credentials name the hub at {keys.url}/hub, not {keys.url}/other",
        ),
        "keys not there": (
            good,
            f"{keys.url}/empty",
            "do not include the key that signed the credentials",
        ),
    }
    for name, (token, hub_url, reason) in cases.items():
        path = tmp_path / "bad.jws"
        path.write_text(token)
        with pytest.raises(CommandError) as refused:
            run("federation_credentials", "verify", str(path), "--hub-url", hub_url)
        message = str(refused.value)
        assert reason in message and "\n" not in message, (name, message)
        assert "secret" not in message


def test_credentials_are_signed_only_for_a_recorded_member(settings: Any, keys: KeysServer) -> None:
    as_hub(settings, keys)
    with pytest.raises(CommandError, match=r"^goa is not a member of this federation"):
        run("federation_credentials", "sign", stdin=json.dumps(SECRETS))
    Member.objects.create(
        code="goa", name="Goa", portal_url="https://goa.example", keys_url="https://goa.example/k"
    )
    incomplete = {k: v for k, v in SECRETS.items() if k != "brokerClientSecret"}
    with pytest.raises(CommandError, match="brokerClientSecret is missing"):
        run("federation_credentials", "sign", stdin=json.dumps(incomplete))
    with pytest.raises(CommandError, match="the input is not JSON"):
        run("federation_credentials", "sign", stdin="federationClientSecret=x")
