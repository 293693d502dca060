"""A token naming a key the realm never published makes the portal fetch the realm's keys
again at most once a minute (per key set, in the whole process), however many such tokens
arrive, one after another or at once; within that minute they are refused without a fetch.

The realm's keys endpoint is a stand-in that counts its fetches (tests/security/realm.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client, RequestFactory

from tenant_portal.core import jwks
from tenant_portal.federation.auth import Unauthorized, caller
from tests.security.realm import FORGED_KEY, REALM_KEY, StandInRealm

pytestmark = pytest.mark.django_db

FORGED = 20


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moment = Clock()
    monkeypatch.setattr(jwks, "_now", moment)
    return moment


def feed(realm: StandInRealm, key: Any = FORGED_KEY) -> int:
    token = realm.access_token(key=key)
    response = Client().get("/federation/v1/changes", headers={"Authorization": f"Bearer {token}"})
    return response.status_code


def xapi(realm: StandInRealm, key: Any = FORGED_KEY) -> int:
    token = realm.access_token(key=key)
    response = Client().get(
        "/xapi/statements",
        headers={"Authorization": f"Bearer {token}", "X-Experience-API-Version": "1.0.3"},
    )
    return response.status_code


def logout(realm: StandInRealm, key: Any = FORGED_KEY) -> int:
    response = Client().post(
        "/auth/backchannel-logout/", {"logout_token": realm.logout_token(key=key)}
    )
    return response.status_code


# interface: (send a request, the status of a refused token, of an accepted one)
INTERFACES: dict[str, tuple[Callable[..., int], int, int]] = {
    "feed": (feed, 401, 200),
    "xapi": (xapi, 401, 200),
    "back-channel logout": (logout, 400, 200),
}


@pytest.mark.parametrize("interface", list(INTERFACES))
def test_forged_kids_cause_at_most_one_refetch_a_minute(
    interface: str, hub_portal: StandInRealm, clock: Clock
) -> None:
    send, refused, accepted = INTERFACES[interface]
    assert send(hub_portal, REALM_KEY) == accepted
    assert hub_portal.fetches == 1
    # Within the minute of that fetch: refused at once, nothing fetched.
    assert [send(hub_portal) for _ in range(FORGED)] == [refused] * FORGED
    assert hub_portal.fetches == 1
    # A minute later: one refetch (the realm may have rotated), then none again.
    clock.now += jwks.REFETCH_SECONDS + 1
    assert [send(hub_portal) for _ in range(FORGED)] == [refused] * FORGED
    assert hub_portal.fetches == 2
    assert send(hub_portal, REALM_KEY) == accepted
    assert hub_portal.fetches == 2


def test_forged_kids_at_once_from_many_threads_cause_one_refetch(
    hub_portal: StandInRealm, clock: Clock
) -> None:
    request = RequestFactory().get(
        "/", headers={"Authorization": f"Bearer {hub_portal.access_token(key=REALM_KEY)}"}
    )
    assert caller(request) == "bihar"
    clock.now += jwks.REFETCH_SECONDS + 1
    hub_portal.delay = 0.3  # the refetch is slow: the others arrive while it runs
    forged = RequestFactory().get(
        "/", headers={"Authorization": f"Bearer {hub_portal.access_token(key=FORGED_KEY)}"}
    )
    outcomes: list[str] = []
    start = threading.Barrier(16)

    def attempt() -> None:
        start.wait()
        try:
            outcomes.append(caller(forged))
        except Unauthorized as exc:
            outcomes.append(f"refused: {exc}")

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(outcomes) == 16 and all(o.startswith("refused") for o in outcomes), outcomes
    assert hub_portal.fetches == 2


def test_a_rotated_key_is_still_found_after_the_window(
    hub_portal: StandInRealm, clock: Clock
) -> None:
    assert feed(hub_portal, REALM_KEY) == 200
    hub_portal.keys = [REALM_KEY, FORGED_KEY]  # the realm rotates: a new key appears
    assert feed(hub_portal, FORGED_KEY) == 401  # within the minute: not looked for
    clock.now += jwks.REFETCH_SECONDS + 1
    assert feed(hub_portal, FORGED_KEY) == 200
    assert hub_portal.fetches == 2


def test_an_unreachable_realm_is_not_asked_again_at_once(
    hub_portal: StandInRealm, clock: Clock, settings: Any
) -> None:
    from tests.tenant_portal.conftest import set_portal

    set_portal(
        settings, federation={**_federation(settings), "hubIssuer": "http://127.0.0.1:9/realms/hub"}
    )
    assert feed(hub_portal, REALM_KEY) == 401
    assert feed(hub_portal, REALM_KEY) == 401  # refused without a second attempt
    assert jwks._of("http://127.0.0.1:9/realms/hub/protocol/openid-connect/certs").failed


def _federation(settings: Any) -> dict[str, Any]:
    federation = settings.PORTAL.federation
    return {
        "code": "hub",
        "isHub": True,
        "hub": "hub",
        "hubIssuer": federation.hub_issuer,
        "clientId": "federation-hub",
        "peers": [],
        "members": [
            {
                "code": "bihar",
                "name": "Bihar",
                "tenantType": "state",
                "portalUrl": "http://127.0.0.1:9",
                "keysUrl": "http://127.0.0.1:9/federation/v1/keys",
                "publish": False,
            }
        ],
        "subscribe": None,
    }
