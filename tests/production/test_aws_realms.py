"""The aws target's realm step (infra/targets/aws/realms.py): the production Keycloak's realms
applied with the secrets kept in Secrets Manager (moto's server), as `karmayogi deploy <code>
--target aws` runs it once a tenant's stack is up."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from identity.admin import AdminAPI, Credentials
from identity.desired import PORTAL_CLIENT
from infra.errors import KitError
from infra.keycloak.realm_step import accounts_json
from infra.render.inputs import CLIENT_SECRETS
from infra.targets.aws import names
from infra.targets.aws.realms import KEYCLOAK_ACCOUNTS, apply_realms
from infra.targets.aws.secrets import AwsSecretStore
from tests.production.conftest import ProductionServer
from tests.production.tenants import ProductionTenants
from tests.rig.moto import moto_for_this_process

DEPLOYMENT = "national"


@pytest.fixture(scope="module")
def secrets_manager() -> Iterator[Any]:
    """moto's Secrets Manager, the only AWS stand-in, with this process pointed at it."""
    with moto_for_this_process() as server:
        yield boto3.client("secretsmanager", endpoint_url=server.endpoint)


def _keep(client: Any, secret_id: str, value: str) -> None:
    """A secret as a stack makes it and the kit fills it."""
    client.create_secret(Name=secret_id, SecretString=value)


def _portal_secret(server: ProductionServer, realm: str) -> str:
    account = server.reconciler
    api = AdminAPI(Credentials(server.url, account.client_id, account.client_secret))
    (client,) = api.get(f"/{realm}/clients", "portal client", clientId=PORTAL_CLIENT)
    return str(api.get(f"/{realm}/clients/{client['id']}/client-secret", "secret")["value"])


def test_realms_take_their_secrets_from_secrets_manager_and_a_state_waits_for_its_stack(
    secrets_manager: Any,
    production_keycloak: ProductionServer,
    production_tenants: ProductionTenants,
) -> None:
    server = production_keycloak
    specs = production_tenants.specs
    hub = production_tenants.tenant("karmayogi").code
    bihar = production_tenants.tenant("bihar").code
    store = AwsSecretStore()
    said: list[str] = []

    def run() -> list[str]:
        return apply_realms(specs, DEPLOYMENT, store, said.append, keycloak_url=server.url)

    # Nothing kept yet: no accounts and no bootstrap client secret, one line.
    with pytest.raises(KitError) as refused:
        run()
    assert str(refused.value) == (
        f"neither karmayogi/{DEPLOYMENT}/keycloak-accounts nor "
        f"karmayogi/{DEPLOYMENT}/keycloak-bootstrap-client-secret has a value: "
        f"run `karmayogi platform deploy {DEPLOYMENT}` first"
    )
    # The platform's first run stored the kit's accounts; the hub's stack is up, Bihar's not.
    _keep(
        secrets_manager,
        names.secret_id(DEPLOYMENT, KEYCLOAK_ACCOUNTS),
        accounts_json(server.accounts),
    )
    values = production_tenants.store
    for name in CLIENT_SECRETS:
        _keep(secrets_manager, names.secret_id(hub, name), values.secret(hub, name).value or "")
    said.clear()
    run()
    assert f"{bihar}: its realm waits: no karmayogi/{bihar}/portal-client-secret yet" in (
        " ".join(said)
    )
    assert any(line.startswith(f"applying the realms of {hub} at https://") for line in said)

    # Bihar's stack is up: both realms are applied.
    for name in CLIENT_SECRETS:
        _keep(secrets_manager, names.secret_id(bihar, name), values.secret(bihar, name).value or "")
    said.clear()
    run()
    (applying,) = [line for line in said if line.startswith("applying the realms of ")]
    codes = applying.split(" at ")[0].removeprefix("applying the realms of ").split(", ")
    assert sorted(codes) == sorted([hub, bihar]), said
    original = values.secret(bihar, "portal_client_secret").value or ""
    assert _portal_secret(server, bihar) == original

    # A new portal client secret in Secrets Manager reaches Bihar's realm, and no change
    # described shows it.
    portal_secret_id = names.secret_id(bihar, "portal_client_secret")
    store.write(portal_secret_id, "rotated-" + original)
    changes = run()
    assert f"~ {bihar}: client {bihar}/{PORTAL_CLIENT} (update)" in changes[0], changes
    assert _portal_secret(server, bihar) == "rotated-" + original
    assert not any(original in change for change in changes)

    # Put back as the rest of the session expects it.
    store.write(portal_secret_id, original)
    run()
    assert _portal_secret(server, bihar) == original
