"""A hostile or broken peer: every bad record is quarantined with its reason while the rest go
on; every bad page stops the sync with a clear message and writes nothing.

The peer is a small HTTP server on loopback that serves whatever each case needs, with records
signed by keys the test makes (the "hub" key, and Bihar's key for records the hub relays). The
tenant's token still comes from the real hub realm in Keycloak.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import Client
from joserfc import jws
from joserfc.jwk import ECKey

from infra.targets.local.keycloak import LocalKeycloak
from tenant_portal.catalogue.models import CatalogueEntry
from tenant_portal.federation import sync as sync_module
from tenant_portal.federation.models import PeerState, Quarantined
from tenant_portal.federation.records import SCHEMA_ID, V1_SCHEMA_ID
from tenant_portal.federation.sync import SyncError, sync
from tests.tenant_portal.conftest import set_portal
from tests.tenant_portal.federation_env import Realms, hub_realms
from tests.tenant_portal.learning import prepare_site

pytestmark = pytest.mark.django_db

HUB_KEY = ECKey.generate_key("P-256", private=True, parameters={"kid": "hub-key"})
BIHAR_KEY = ECKey.generate_key("P-256", private=True, parameters={"kid": "bihar-key"})
STRANGER_KEY = ECKey.generate_key("P-256", private=True, parameters={"kid": "hub-key-2"})
P384_KEY = ECKey.generate_key("P-384", private=True, parameters={"kid": "hub-key"})
NOTE_IRI = "https://karmayogi.example/kcm/functional/policy-and-regulation/noting-and-drafting"


class Peer:
    """Routes: path -> (status, body, delay in seconds)."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[dict[str, str]], tuple[int, bytes, float]]] = {}
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                route = peer.routes.get(path)
                status, body, delay = route(params) if route else (404, b"{}", 0.0)
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.routes["/hub-keys"] = lambda _p: (200, keyset(HUB_KEY), 0.0)
        self.routes["/bihar-keys"] = lambda _p: (200, keyset(BIHAR_KEY), 0.0)
        # The hub's member directory, signed by the hub: where each origin's keys are.
        self.routes["/federation/v1/keys"] = lambda _p: (200, keyset(HUB_KEY), 0.0)
        listed = {"hub": f"{self.url}/hub-keys", "bihar": f"{self.url}/bihar-keys"}
        self.routes["/federation/v1/members"] = lambda _p: (200, directory(listed).encode(), 0.0)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve_page(self, changes: list[dict[str, Any]], **extra: Any) -> None:
        def page(params: dict[str, str]) -> tuple[int, bytes, float]:
            after = int(params.get("after", "0"))
            todo = [c for c in changes if c["position"] > after]
            last = max([c["position"] for c in changes] + [after])
            body = {"changes": todo, "next": todo[-1]["position"] if todo else after, "last": last}
            return 200, json.dumps({**body, **extra}).encode(), 0.0

        self.routes["/federation/v1/changes"] = page


def keyset(key: ECKey) -> bytes:
    return json.dumps({"keys": [{**key.as_dict(private=False), "kid": key.kid}]}).encode()


def directory(keys: dict[str, str], key: ECKey = HUB_KEY, hub: str = "hub") -> str:
    """A member directory of the hub listing ``keys`` (code -> keys URL), signed by ``key``."""
    members = [
        {
            "code": code,
            "name": code,
            "tenantType": "state",
            "portalUrl": url.rsplit("/", 1)[0],
            "keysUrl": url,
            "status": "active",
            "publish": True,
        }
        for code, url in keys.items()
    ]
    payload = {
        "type": "karmayogi-member-directory",
        "version": 1,
        "hub": hub,
        "issued": int(time.time()),
        "members": members,
    }
    header = {"alg": "ES256", "kid": key.kid, "typ": "karmayogi-directory+jws"}
    return str(jws.serialize_compact(header, json.dumps(payload).encode(), key))


@pytest.fixture(scope="module")
def realms(keycloak: LocalKeycloak) -> Iterator[Realms]:
    with hub_realms(keycloak, "rajasthan") as realms:
        yield realms


@pytest.fixture
def peer(realms: Realms, settings: Any) -> Iterator[Peer]:
    prepare_site()
    hostile = Peer()
    set_portal(
        settings,
        tenant=realms.realm("rajasthan"),
        federation={
            "code": realms.realm("rajasthan"),
            "isHub": False,
            "hub": "hub",
            "hubIssuer": realms.issuer,
            "clientId": f"federation-{realms.realm('rajasthan')}",
            "clientSecret": f"federation-{realms.realm('rajasthan')}",
            "peers": [{"code": "hub", "url": hostile.url}],
            "hubUrl": hostile.url,
            "subscribe": {"languages": [], "competencyAreas": []},
        },
    )
    yield hostile
    hostile.server.shutdown()


def record(course: uuid.UUID | None = None, origin: str = "hub", **fields: Any) -> dict[str, Any]:
    course = course or uuid.uuid4()
    data: dict[str, Any] = {
        "@context": ["https://schema.org", {}],
        "@type": "Course",
        "schemaVersion": SCHEMA_ID,
        "@id": f"https://{origin}.example.org/courses/{course}",
        "identifier": f"https://{origin}.example.org/courses/{course}",
        "name": {"en": "Noting and drafting"},
        "description": {"en": "Clear notes."},
        "provider": {"@type": "GovernmentOrganization", "name": "Hub", "identifier": origin},
        "inLanguage": ["en"],
        "teaches": [{"@type": "DefinedTerm", "@id": NOTE_IRI, "educationalLevel": 2}],
        "timeRequired": "PT1H",
        "version": 1,
        "dateModified": "2026-11-01T10:00:00+00:00",
        "url": "https://hub.example.org/courses/notes/",
        "creativeWorkStatus": "Published",
    }
    for name, value in fields.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def signed(data: Any, key: ECKey = HUB_KEY, alg: str = "ES256") -> str:
    payload = json.dumps(data).encode()
    header = {"alg": alg, "kid": key.kid}
    return str(jws.serialize_compact(header, payload, key, algorithms=[alg]))


def change(position: int, token: str, data: dict[str, Any] | None = None, **over: Any) -> dict:
    body = data or {}
    ident = str(body.get("identifier", "x/" + str(uuid.uuid4()))).rsplit("/", 1)[1]
    return {
        "position": position,
        "id": ident,
        "origin": body.get("provider", {}).get("identifier", "hub"),
        "kind": "upsert",
        "version": body.get("version", 1),
        "record": token,
        **over,
    }


def one(data: dict[str, Any], *, key: ECKey = HUB_KEY, **over: Any) -> list[dict[str, Any]]:
    """A page of one bad change at position 1 and one good change at position 2."""
    return bad_token(signed(data, key), data, **over)


def bad_token(token: str, data: dict[str, Any], **over: Any) -> list[dict[str, Any]]:
    good = record(name={"en": "A good course"})
    return [change(1, token, data, **over), change(2, signed(good), good)]


SAME = record()
PROVIDER = {"@type": "GovernmentOrganization", "name": "Hub", "identifier": "hub"}


RECORD_CASES: dict[str, tuple[Callable[[], list[dict[str, Any]]], str]] = {
    "wrong type": (lambda: one(record(name="not a map")), "schema: name"),
    "missing field": (lambda: one(record(url=None)), "schema: (record): 'url' is a required"),
    "ten megabyte description": (
        lambda: one(record(description={"en": "x" * 10_000_000})),
        "the record is over 256 KB",
    ),
    "oversized title": (lambda: one(record(name={"en": "x" * 301})), "schema: name/en"),
    "unknown competency": (
        lambda: one(
            record(
                teaches=[{"@type": "DefinedTerm", "@id": "https://evil/x", "educationalLevel": 1}]
            )
        ),
        "unknown competency https://evil/x",
    ),
    "bad language tag": (lambda: one(record(inLanguage=["english!"])), "schema: inLanguage/0"),
    "bad duration": (lambda: one(record(timeRequired="an hour")), "schema: timeRequired"),
    "level out of range": (
        lambda: one(
            record(teaches=[{"@type": "DefinedTerm", "@id": NOTE_IRI, "educationalLevel": 9}])
        ),
        "schema: teaches/0/educationalLevel",
    ),
    "tampered signature": (
        lambda: bad_token(signed(SAME)[:-6] + "AAAAAA", SAME),
        "signature: the signature does not verify",
    ),
    "no signature at all": (
        lambda: bad_token(json.dumps(SAME), SAME),
        "signature: not a compact JWS",
    ),
    "key not the origin's": (
        lambda: one(record(), key=STRANGER_KEY),
        "signature: key 'hub-key-2' is not one of the origin's keys",
    ),
    "another algorithm": (
        lambda: bad_token(signed(SAME, P384_KEY, "ES384"), SAME),
        "signature: algorithm 'ES384' is not ES256",
    ),
    "claims another origin": (
        lambda: one(record(origin="bihar"), origin="hub"),
        "the record names another origin than the feed says",
    ),
    "signed by the hub but claiming Bihar": (
        lambda: one(record(origin="bihar"), key=HUB_KEY),
        "signature: key 'hub-key' is not one of the origin's keys",
    ),
    "record and feed entry disagree": (
        lambda: one(record(), id=str(uuid.uuid4())),
        "the record does not match its entry in the feed",
    ),
    "unknown origin": (
        lambda: one(record(origin="atlantis"), key=HUB_KEY),
        "unknown origin 'atlantis'",
    ),
    "provider map not a map": (
        lambda: one(record(provider={**PROVIDER, "nameMap": "Hub"})),
        "schema: provider/nameMap: 'Hub' is not of type 'object'",
    ),
    "provider map with a bad language": (
        lambda: one(record(provider={**PROVIDER, "nameMap": {"Hindi!": "हब"}})),
        "schema: provider/nameMap",
    ),
    "provider map with an empty name": (
        lambda: one(record(provider={**PROVIDER, "nameMap": {"hi": ""}})),
        "schema: provider/nameMap/hi: '' should be non-empty",
    ),
    "provider map in a v1 record": (
        lambda: one(
            record(schemaVersion=V1_SCHEMA_ID, provider={**PROVIDER, "nameMap": {"en": "Hub"}})
        ),
        "schema: provider: Additional properties are not allowed ('nameMap'",
    ),
    "an unknown record version": (
        lambda: one(
            record(schemaVersion="https://karmayogi.example/schemas/course-record/v9.json")
        ),
        "schema: schemaVersion",
    ),
    "payload not an object": (
        lambda: bad_token(signed(["a", "list"]), SAME),
        "not a JSON object",
    ),
}


@pytest.mark.parametrize("case", list(RECORD_CASES))
def test_a_bad_record_is_quarantined_with_its_reason_and_the_rest_go_on(
    peer: Peer, case: str
) -> None:
    make, reason = RECORD_CASES[case]
    peer.serve_page(make())
    result = sync("hub")
    assert result.quarantined == 1 and result.applied == 1
    held = Quarantined.objects.get()
    assert reason in held.reason, held.reason
    assert held.position == 1 and len(held.payload) <= 65536
    assert PeerState.objects.get(peer="hub").cursor == 2
    assert CatalogueEntry.objects.count() == 1


def test_a_v1_record_is_still_accepted_and_a_v1_1_map_is_stored(peer: Peer) -> None:
    old, new = record(schemaVersion=V1_SCHEMA_ID), record(name={"en": "Provided in two"})
    new["provider"]["nameMap"] = {"en": "Hub Academy", "hi": "हब अकादमी"}
    peer.serve_page([change(1, signed(old), old), change(2, signed(new), new)])
    result = sync("hub")
    assert result.applied == 2 and result.quarantined == 0
    v1 = CatalogueEntry.objects.get(iri=old["identifier"])
    # A v1 record names the provider in the origin's first language: shown as is everywhere.
    assert v1.provider == "Hub" and v1.provider_name == {}
    v11 = CatalogueEntry.objects.get(iri=new["identifier"])
    assert v11.provider == "Hub" and v11.provider_name == {"en": "Hub Academy", "hi": "हब अकादमी"}
    assert "हब अकादमी" in v11.search_text


def test_a_replayed_old_version_is_refused(peer: Peer) -> None:
    course = uuid.uuid4()
    newer, older = record(course, version=3), record(course, version=2, name={"en": "Old"})
    peer.serve_page([change(1, signed(newer), newer)])
    sync("hub")
    peer.serve_page([change(1, signed(newer), newer), change(2, signed(older), older)])
    assert sync("hub").quarantined == 1
    assert "replays version 2; version 3 is held" in Quarantined.objects.get().reason
    assert CatalogueEntry.objects.get().version == 3


def test_a_relayed_record_is_checked_against_its_origins_keys_from_the_directory(
    peer: Peer,
) -> None:
    """Bihar's record, relayed by the hub, verifies under the keys URL the hub's signed
    directory lists for Bihar; the same record signed by the hub's key does not."""
    good = record(origin="bihar")
    forged = record(origin="bihar", name={"en": "Forged"})
    peer.serve_page([change(1, signed(good, BIHAR_KEY), good), change(2, signed(forged), forged)])
    result = sync("hub")
    assert (result.applied, result.quarantined) == (1, 1)
    assert CatalogueEntry.objects.get().origin == "bihar"
    assert "key 'hub-key' is not one of the origin's keys" in Quarantined.objects.get().reason


def test_an_origin_the_directory_does_not_list_is_unknown(peer: Peer) -> None:
    data = record(origin="goa")
    peer.serve_page([change(1, signed(data), data)])
    assert sync("hub").quarantined == 1
    assert "unknown origin 'goa'" in Quarantined.objects.get().reason


@pytest.mark.parametrize(
    "case",
    ["signed by another key", "another hub's", "tampered", "not signed"],
)
def test_a_directory_that_does_not_verify_stops_the_sync(peer: Peer, case: str) -> None:
    listed = {"hub": f"{peer.url}/hub-keys", "bihar": f"{peer.url}/stranger-keys"}
    token = {
        "signed by another key": lambda: directory(listed, key=STRANGER_KEY),
        "another hub's": lambda: directory(listed, hub="goa"),
        "tampered": lambda: directory(listed).rsplit(".", 1)[0] + "." + "A" * 86,
        "not signed": lambda: json.dumps({"members": []}),
    }[case]()
    peer.routes["/federation/v1/members"] = lambda _p: (200, token.encode(), 0.0)
    peer.routes["/stranger-keys"] = lambda _p: (200, keyset(STRANGER_KEY), 0.0)
    data = record(origin="bihar")
    peer.serve_page([change(1, signed(data, STRANGER_KEY), data)])
    with pytest.raises(SyncError, match=r"member directory .* is not trusted") as stopped:
        sync("hub")
    assert "\n" not in str(stopped.value)
    assert not CatalogueEntry.objects.exists() and not Quarantined.objects.exists()
    state = PeerState.objects.get(peer="hub")
    assert state.cursor == 0 and "not trusted" in state.last_error


def test_script_in_a_title_is_stored_inert_and_shown_escaped(peer: Peer) -> None:
    title = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    data = record(name={"en": title})
    peer.serve_page([change(1, signed(data), data)])
    assert sync("hub").applied == 1
    assert CatalogueEntry.objects.get().name == {"en": title}
    html = Client(headers={"accept-language": "en"}).get("/courses/").content.decode()
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)" in html


def test_a_record_at_the_schemas_limits_is_stored_whole(peer: Peer) -> None:
    """Every length the record schema allows fits the catalogue's columns: a provider named
    in 300 characters is a course like any other, not a page write that stops the sync."""
    provider = "ज" * 300
    data = record(
        name={"en": "N" * 300},
        description={"en": "d" * 5000},
        provider={"@type": "GovernmentOrganization", "name": provider, "identifier": "hub"},
    )
    peer.serve_page([change(1, signed(data), data)])
    assert sync("hub").applied == 1
    entry = CatalogueEntry.objects.get()
    assert entry.provider == provider and entry.origin_name == provider
    assert entry.name == {"en": "N" * 300} and not Quarantined.objects.exists()


PAGE_CASES: dict[str, tuple[Callable[[Peer], None], str]] = {
    "not JSON": (
        lambda p: p.routes.__setitem__(
            "/federation/v1/changes", lambda _q: (200, b"<html>oops", 0.0)
        ),
        "the feed page is not JSON",
    ),
    "malformed cursor": (
        lambda p: p.serve_page([], next="abc"),
        "the feed page's cursor is malformed",
    ),
    "positions going backwards": (
        lambda p: p.serve_page(
            [change(2, signed(record()), record()), change(1, signed(record()), record())]
        ),
        "positions do not increase",
    ),
    "a change without a record": (
        lambda p: p.serve_page([{"position": 1, "id": "x", "kind": "upsert"}]),
        "a change after position 0 is malformed",
    ),
    "more changes than asked": (
        lambda p: p.serve_page([change(n, signed(record()), record()) for n in range(1, 5)]),
        "the feed sent 4 changes where 3 were asked",
    ),
    "server error": (
        lambda p: p.routes.__setitem__(
            "/federation/v1/changes", lambda _q: (500, b'{"error": "boom"}', 0.0)
        ),
        "the feed answered 500",
    ),
    "slow server": (
        lambda p: p.routes.__setitem__("/federation/v1/changes", lambda _q: (200, b"{}", 3.0)),
        "the feed did not answer in time",
    ),
}


@pytest.mark.parametrize("case", list(PAGE_CASES))
def test_a_bad_page_stops_the_sync_and_writes_nothing(
    peer: Peer, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    monkeypatch.setattr(sync_module, "TIMEOUT", httpx.Timeout(1.0))
    arrange, message = PAGE_CASES[case]
    arrange(peer)
    with pytest.raises(SyncError, match=message):
        sync("hub", limit=3)
    assert not CatalogueEntry.objects.exists() and not Quarantined.objects.exists()
    state = PeerState.objects.get(peer="hub")
    assert state.cursor == 0 and message in state.last_error


def test_a_feed_that_never_ends_is_cut_off(peer: Peer) -> None:
    def endless(params: dict[str, str]) -> tuple[int, bytes, float]:
        after = int(params.get("after", "0"))
        data = record()
        body = {"changes": [change(after + 1, signed(data), data)], "next": after + 1}
        return 200, json.dumps({**body, "last": after + 10}).encode(), 0.0

    peer.routes["/federation/v1/changes"] = endless
    with pytest.raises(SyncError, match="did not end after 5 pages"):
        sync("hub", max_pages=5)
    assert PeerState.objects.get(peer="hub").cursor == 5  # what arrived is kept, once


def test_an_oversized_page_is_refused(peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync_module, "MAX_PAGE_BYTES", 10_000)
    data = record(description={"en": "y" * 4000})
    peer.serve_page([change(n, signed(data), data) for n in range(1, 4)])
    with pytest.raises(SyncError, match="a feed page over 10000 bytes"):
        sync("hub")
    assert not CatalogueEntry.objects.exists()


def test_two_syncs_at_once_do_not_interfere(peer: Peer) -> None:
    """While another process holds the peer's sync lock, a second sync exits cleanly."""
    import psycopg
    from django.db import connection

    data = record()
    peer.serve_page([change(1, signed(data), data)])
    params = connection.get_connection_params()
    key = sync_module.lock_key("hub")
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [key])
        with pytest.raises(SyncError, match="another sync of this peer is running"):
            sync("hub")
        assert not CatalogueEntry.objects.exists()
        # Released explicitly: a closing connection frees its locks only once its server
        # process has ended, which may be after the next line runs.
        other.execute("SELECT pg_advisory_unlock(%s)", [key])
    assert sync("hub").applied == 1


def test_quarantined_records_are_listed_in_the_admin(peer: Peer) -> None:
    from django.contrib.auth import get_user_model

    peer.serve_page(one(record(name="not a map")))
    sync("hub")
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", "root@example.org"))
    listing = admin.get("/admin/quarantined/")
    assert listing.status_code == 200 and "schema: name" in listing.content.decode()
