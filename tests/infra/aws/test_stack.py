"""The aws target's tenant stack under Pulumi's mocks (the engine and the AWS provider cannot
run here, docs/aws.md): every security property is read from the resources' inputs."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from infra.errors import KitError
from infra.render.sizes import SIZES
from infra.targets.aws import names
from infra.targets.aws.stack import TenantStack, TenantStackArgs

ACCOUNT = "123456789012"


class _Mocks(pulumi.runtime.Mocks):
    """Records each resource's inputs and gives it an ARN made of its type and name."""

    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(args)
        service = args.typ.split(":")[1].split("/")[0]
        state = {**args.inputs, "arn": f"arn:aws:{service}:ap-south-1:{ACCOUNT}:{args.name}"}
        if args.typ == "aws:kms/key:Key":
            state["keyId"] = f"key-{args.name}"
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
        return {}

    def of(self, typ: str) -> list[pulumi.runtime.MockResourceArgs]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str) -> dict[str, Any]:
        (found,) = self.of(typ)
        return dict(found.inputs)


def _args(code: str = "bihar", size: str = "small") -> TenantStackArgs:
    return TenantStackArgs(
        code=code,
        domain=f"learn.{code}.example",
        environment="production",
        size=size,
        subnet_ids=["subnet-a", "subnet-b"],
        database_security_group_ids=["sg-db"],
        oidc_provider_arn=f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.example/id/ABC",
        oidc_issuer="https://oidc.eks.example/id/ABC",
        rotation_lambda_arn=f"arn:aws:lambda:ap-south-1:{ACCOUNT}:function:rotate",
    )


def _build(*tenants: TenantStackArgs) -> tuple[_Mocks, list[TenantStack]]:
    """The tenants' stacks, built and every resource registered with the mocks."""
    mocks = _Mocks()
    pulumi.runtime.set_mocks(mocks, project="karmayogi", stack="test", preview=False)
    stacks: list[TenantStack] = []

    @pulumi.runtime.test  # type: ignore[untyped-decorator,unused-ignore]
    def program() -> pulumi.Output[Any]:
        stacks.extend(TenantStack(t.code, t) for t in tenants)
        return pulumi.Output.all(*(s.policy_document for s in stacks))

    program()
    return mocks, stacks


def test_the_media_bucket_is_versioned_private_and_encrypted_with_the_tenants_key() -> None:
    mocks, _ = _build(_args())
    key_arn = f"arn:aws:kms:ap-south-1:{ACCOUNT}:karmayogi-bihar-production-key"
    key = mocks.one("aws:kms/key:Key")
    assert key["enableKeyRotation"] is True
    assert mocks.one("aws:s3/bucket:Bucket")["bucket"] == "karmayogi-bihar-production-media"
    versioning = mocks.one("aws:s3/bucketVersioning:BucketVersioning")
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    (rule,) = mocks.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )["rules"]
    default = rule["applyServerSideEncryptionByDefault"]
    assert default == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": key_arn}
    block = mocks.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    for setting in (
        "blockPublicAcls",
        "blockPublicPolicy",
        "ignorePublicAcls",
        "restrictPublicBuckets",
    ):
        assert block[setting] is True, setting
    (lifecycle,) = mocks.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")[
        "rules"
    ]
    assert lifecycle["status"] == "Enabled"
    assert lifecycle["noncurrentVersionExpiration"]["noncurrentDays"] == 90
    (cors,) = mocks.one("aws:s3/bucketCorsConfiguration:BucketCorsConfiguration")["corsRules"]
    assert cors["allowedOrigins"] == ["https://learn.bihar.example"]
    assert set(cors["allowedMethods"]) == {"GET", "HEAD"}


def test_the_database_is_encrypted_kept_and_protected() -> None:
    mocks, _ = _build(_args())
    database = mocks.one("aws:rds/instance:Instance")
    assert database["storageEncrypted"] is True
    assert database["kmsKeyId"].endswith(":karmayogi-bihar-production-key")
    assert database["backupRetentionPeriod"] == names.BACKUP_RETENTION_DAYS >= 7
    assert database["deletionProtection"] is True
    assert database["skipFinalSnapshot"] is False
    assert database["publiclyAccessible"] is False
    assert database["manageMasterUserPassword"] is True
    assert "password" not in database


@pytest.mark.parametrize("size", sorted(SIZES))
def test_the_database_class_and_standby_come_from_the_size_table(size: str) -> None:
    mocks, _ = _build(_args(size=size))
    database = mocks.one("aws:rds/instance:Instance")
    expected = SIZES[size]  # type: ignore[index]
    assert database["instanceClass"] == expected.database_class
    assert database["allocatedStorage"] == expected.database_storage_gb
    assert database["multiAz"] is expected.database_multi_az


def test_an_unknown_size_is_one_clear_error() -> None:
    with pytest.raises(KitError, match=r"^tenant bihar: unknown size 'huge' \(one of small"):
        _build(_args(size="huge"))


def test_the_kits_secrets_are_in_secrets_manager_under_the_tenants_key_without_values() -> None:
    mocks, _ = _build(_args())
    secrets = mocks.of("aws:secretsmanager/secret:Secret")
    assert sorted(s.inputs["name"] for s in secrets) == sorted(
        f"karmayogi/bihar/{n.replace('_', '-')}" for n in names.SECRET_NAMES
    )
    for secret in secrets:
        assert secret.inputs["kmsKeyId"].endswith(":karmayogi-bihar-production-key")
    assert mocks.of("aws:secretsmanager/secretVersion:SecretVersion") == []
    (rotation,) = mocks.of("aws:secretsmanager/secretRotation:SecretRotation")
    assert rotation.inputs["secretId"] == "karmayogi-bihar-production-database-url-id"
    assert rotation.inputs["rotationRules"]["automaticallyAfterDays"] == names.ROTATION_DAYS


def test_the_portals_role_names_only_this_tenants_bucket_key_and_secrets() -> None:
    mocks, _ = _build(_args())
    role = mocks.one("aws:iam/role:Role")
    (trust,) = json.loads(role["assumeRolePolicy"])["Statement"]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert trust["Condition"]["StringEquals"]["oidc.eks.example/id/ABC:sub"] == (
        "system:serviceaccount:karmayogi-bihar:tenant-portal"
    )
    document = json.loads(mocks.one("aws:iam/rolePolicy:RolePolicy")["policy"])
    resources = {r for s in document["Statement"] for r in s["Resource"]}
    arn = f"arn:aws:{{}}:ap-south-1:{ACCOUNT}:karmayogi-bihar-production-{{}}"
    assert resources == {
        arn.format("s3", "media"),
        arn.format("s3", "media") + "/*",
        arn.format("kms", "key"),
        *(arn.format("secretsmanager", n.replace("_", "-")) for n in names.SECRET_NAMES),
    }
    assert all(s["Effect"] == "Allow" and "*" not in s["Action"] for s in document["Statement"])


def test_every_resource_is_named_and_tagged_for_its_tenant() -> None:
    mocks, _ = _build(_args())
    for resource in mocks.resources:
        if resource.typ.startswith("karmayogi:"):
            continue
        assert resource.name.startswith("karmayogi-bihar-production-"), resource.name
        if "tags" in resource.inputs:
            assert resource.inputs["tags"] == {
                "tenant": "bihar",
                "environment": "production",
                "managed-by": "karmayogi",
            }
    tagged = {r.typ for r in mocks.resources if "tags" in r.inputs}
    assert {
        "aws:kms/key:Key",
        "aws:s3/bucket:Bucket",
        "aws:rds/instance:Instance",
        "aws:secretsmanager/secret:Secret",
        "aws:iam/role:Role",
    } <= tagged


def test_two_tenants_stacks_share_no_resource_name() -> None:
    mocks, _ = _build(_args("bihar"), _args("goa"))
    physical = ("bucket", "identifier", "name")
    by_tenant: dict[str, set[str]] = {"bihar": set(), "goa": set()}
    for resource in mocks.resources:
        tenant = "bihar" if "bihar" in resource.name else "goa"
        by_tenant[tenant].add(resource.name)
        by_tenant[tenant].update(str(resource.inputs[p]) for p in physical if p in resource.inputs)
    assert by_tenant["bihar"] and by_tenant["goa"]
    assert by_tenant["bihar"].isdisjoint(by_tenant["goa"])
