"""The aws target's secret store against moto's server on loopback (the only AWS stand-in)."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from infra.errors import KitError
from infra.render.inputs import (
    CLIENT_SECRETS,
    DJANGO_SECRET_KEY,
    FEDERATION_CLIENT_SECRET,
)
from infra.targets.aws import names
from infra.targets.aws.secrets import AwsSecretStore
from tests.rig.moto import MotoServer


def _tenant_with_key() -> tuple[str, str]:
    """A new tenant code, and the key its stack would have made."""
    code = f"t{uuid.uuid4().hex[:8]}"
    kms = boto3.client("kms")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=names.key_alias(code, "production"), TargetKeyId=key)
    return code, key


def test_secrets_round_trip_under_the_tenants_key(moto: MotoServer) -> None:
    code, key = _tenant_with_key()
    store = AwsSecretStore()
    assert store.secret(code, DJANGO_SECRET_KEY).value is None
    store.put(code, {DJANGO_SECRET_KEY: "first"})
    store.put(code, {DJANGO_SECRET_KEY: "second"})
    secret = AwsSecretStore().secret(code, DJANGO_SECRET_KEY)
    assert secret.value == "second"
    assert secret.reference == f"aws-secretsmanager:karmayogi/{code}/django-secret-key"
    assert "second" not in repr(secret) and "second" not in str(secret)
    described = boto3.client("secretsmanager").describe_secret(
        SecretId=f"karmayogi/{code}/django-secret-key"
    )
    assert described["KmsKeyId"] in (key, names.key_alias(code, "production"), key.split("/")[-1])
    assert {t["Key"]: t["Value"] for t in described["Tags"]}["tenant"] == code


def test_client_secrets_are_made_once_and_kept(moto: MotoServer) -> None:
    code, _ = _tenant_with_key()
    first = AwsSecretStore().values(code)
    assert set(first) == set(CLIENT_SECRETS)
    assert all(len(v) >= 24 for v in first.values())
    AwsSecretStore().put(code, {FEDERATION_CLIENT_SECRET: "from-the-hub"})
    again = AwsSecretStore().values(code)
    assert again == first | {FEDERATION_CLIENT_SECRET: "from-the-hub"}


def test_an_unknown_secret_name_writes_nothing(moto: MotoServer) -> None:
    code, _ = _tenant_with_key()
    with pytest.raises(KitError, match=rf"^tenant {code}: no secret named ssh_key on aws$"):
        AwsSecretStore().put(code, {DJANGO_SECRET_KEY: "kept-out", "ssh_key": "x"})
    assert AwsSecretStore().secret(code, DJANGO_SECRET_KEY).value is None


def test_a_refusal_is_one_line_naming_the_secret(moto: MotoServer) -> None:
    code, _ = _tenant_with_key()
    store = AwsSecretStore()
    store.put(code, {DJANGO_SECRET_KEY: "never-shown"})
    boto3.client("secretsmanager").delete_secret(SecretId=f"karmayogi/{code}/django-secret-key")
    with pytest.raises(KitError) as raised:
        store.secret(code, DJANGO_SECRET_KEY)
    assert str(raised.value) == (
        f"AWS Secrets Manager refused GetSecretValue of karmayogi/{code}/django-secret-key "
        "(InvalidRequestException)"
    )


def test_after_deploy_every_secret_gets_a_value_and_values_already_there_stay(
    moto: MotoServer,
) -> None:
    """The stacks' step (seeding.RandomValues) fills each secret its stack made without a value
    (a tenant's Django key and client secrets, the platform Keycloak's bootstrap secret) and
    keeps one with a value (the hub's), so a second deploy writes nothing."""
    from infra.targets.aws.seeding import _Provider

    code, key = _tenant_with_key()
    client = boto3.client("secretsmanager")
    ids = [names.secret_id(code, n) for n in names.SECRET_NAMES]
    ids.append(names.secret_id(f"d{code}", "keycloak_bootstrap_client_secret"))
    for secret_id in ids:
        client.create_secret(Name=secret_id, KmsKeyId=key)  # as Pulumi makes them: no value
    store = AwsSecretStore()
    store.put(code, {FEDERATION_CLIENT_SECRET: "from-the-hub"})
    state = _Provider()._seed({"name": "seed", "secret_ids": ids, "written": None})
    hub = names.secret_id(code, FEDERATION_CLIENT_SECRET)
    assert state["written"] == [i for i in ids if i != hub]
    first = {i: store.read(i) for i in ids}
    assert first[hub] == "from-the-hub"
    made = [v for i, v in first.items() if i != hub]
    assert len(set(made)) == len(made) == 4 and all(v and len(v) >= 32 for v in made)
    assert not any(v in json.dumps(state) for v in made)
    # A second deploy writes nothing.
    again = _Provider()._seed({"name": "seed", "secret_ids": ids, "written": None})
    assert again["written"] == []
    assert {i: store.read(i) for i in ids} == first
