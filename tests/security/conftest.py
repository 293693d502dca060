"""What the security tests share: a hub portal whose hub realm (and own realm) is a stand-in
keys endpoint, and known secret values seeded into the settings so that any leak is found."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tenant_portal.core import jwks
from tests.security.realm import StandInRealm, stand_in_realm
from tests.tenant_portal.conftest import set_portal

# Distinctive values: none of them can appear in a response or a log line by chance.
SECRETS = {
    "SECRET_KEY": "django-secret-kfk-7Hq2vX9sLm4RtZp8WcYe3Nb6",
    "OIDC_RP_CLIENT_SECRET": "oidc-secret-kfk-Jd5Kf8Gh2Lm9Qw3Er7Ty1Ui4",
    "FEDERATION_CLIENT_SECRET": "federation-secret-kfk-Zx4Cv7Bn1Mq8Wp3Ls6Kd9",
}


@pytest.fixture(autouse=True)
def _forget_key_fetches() -> Iterator[None]:
    """The refetch limit is process-wide; each test starts with none recorded."""
    jwks.forget()
    yield
    jwks.forget()


@pytest.fixture(scope="session")
def realm() -> Iterator[StandInRealm]:
    """The hub realm's keys endpoint (the portal's own realm is the same stand-in)."""
    with stand_in_realm("hub") as stand_in:
        yield stand_in


@pytest.fixture
def hub_portal(realm: StandInRealm, settings: Any) -> StandInRealm:
    """This process as the federation's hub, signing in against ``realm``, with the known
    secrets in place."""
    realm.keys = realm.keys[:1]
    realm.fetches = 0
    realm.delay = 0.0
    settings.SECRET_KEY = SECRETS["SECRET_KEY"]
    settings.OIDC_RP_CLIENT_ID = "portal"
    settings.OIDC_RP_CLIENT_SECRET = SECRETS["OIDC_RP_CLIENT_SECRET"]
    settings.OIDC_OP_JWKS_ENDPOINT = realm.jwks_url
    set_portal(
        settings,
        oidc={
            "issuer": realm.issuer,
            "client_id": "portal",
            "client_secret": SECRETS["OIDC_RP_CLIENT_SECRET"],
        },
        federation={
            "code": "hub",
            "isHub": True,
            "hub": "hub",
            "hubIssuer": realm.issuer,
            "clientId": "federation-hub",
            "clientSecret": SECRETS["FEDERATION_CLIENT_SECRET"],
            "peers": [],
            # The hostile tokens' caller (azp federation-bihar) is a member of the hub.
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
        },
    )
    return realm


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    """Each test starts with an empty cache (pages, catalogue listings): it outlives a test's
    rolled-back rows."""
    from django.core.cache import cache

    cache.clear()
