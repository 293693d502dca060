"""`karmayogi audit <code> --target aws` against moto's server on loopback (the only AWS
stand-in): a tenant built right with boto3 passes, and each broken setting is named."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from infra.cli import app
from infra.errors import KitError
from infra.targets.aws import names
from infra.targets.aws.audit import audit
from infra.targets.aws.secrets import AwsSecretStore
from tests.rig.moto import CREDENTIALS, MotoServer

ENV = "production"


class Tenant:
    """A tenant's AWS resources as the stack makes them, built with boto3."""

    def __init__(self, moto: MotoServer) -> None:
        self.code = f"t{uuid.uuid4().hex[:8]}"
        self.session = boto3.session.Session(region_name=CREDENTIALS["AWS_DEFAULT_REGION"])
        self.endpoint = moto.endpoint
        self.bucket = names.bucket_name(self.code, ENV)
        self.database = names.database_identifier(self.code, ENV)
        self.role = names.role_name(self.code, ENV)

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint)

    def build(
        self, *, encrypted_database: bool = True, rotated: bool = True, managed: bool = True
    ) -> Tenant:
        kms, s3 = self.client("kms"), self.client("s3")
        self.key_arn = kms.create_key()["KeyMetadata"]["Arn"]
        kms.create_alias(AliasName=names.key_alias(self.code, ENV), TargetKeyId=self.key_arn)
        s3.create_bucket(Bucket=self.bucket)
        self.encrypt_bucket(self.key_arn)
        s3.put_public_access_block(
            Bucket=self.bucket,
            PublicAccessBlockConfiguration=dict.fromkeys(
                (
                    "BlockPublicAcls",
                    "IgnorePublicAcls",
                    "BlockPublicPolicy",
                    "RestrictPublicBuckets",
                ),
                True,
            ),
        )
        s3.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
        self.client("rds").create_db_instance(
            DBInstanceIdentifier=self.database,
            DBInstanceClass="db.t4g.small",
            Engine="postgres",
            AllocatedStorage=20,
            MasterUsername="portal",
            # RDS keeps the password, under the tenant's key, and rotates it (a stack's way).
            **(
                {"ManageMasterUserPassword": True, "MasterUserSecretKmsKeyId": self.key_arn}
                if managed
                else {"MasterUserPassword": "not-a-real-password"}
            ),
            StorageEncrypted=encrypted_database,
            **({"KmsKeyId": self.key_arn} if encrypted_database else {}),
            DeletionProtection=True,
            BackupRetentionPeriod=names.BACKUP_RETENTION_DAYS,
        )
        secretsmanager = self.client("secretsmanager")
        self.secret_arns = []
        for name in names.SECRET_NAMES:
            secret_id = names.secret_id(self.code, name)
            self.secret_arns.append(
                secretsmanager.create_secret(Name=secret_id, SecretString="x")["ARN"]
            )
        if managed:
            (db,) = self.client("rds").describe_db_instances(DBInstanceIdentifier=self.database)[
                "DBInstances"
            ]
            master = db["MasterUserSecret"]["SecretArn"]
            self.master_arn = master
            self.secret_arns.append(master)  # the ExternalSecret reads it with the role
            if rotated:
                secretsmanager.rotate_secret(
                    SecretId=master, RotationRules={"AutomaticallyAfterDays": 7}
                )
        iam = self.client("iam")
        iam.create_role(
            RoleName=self.role,
            AssumeRolePolicyDocument=json.dumps(
                names.trust_policy("arn:aws:iam::123456789012:oidc-provider/x", "x", self.code)
            ),
        )
        self.put_policy(
            names.portal_policy(f"arn:aws:s3:::{self.bucket}", self.key_arn, self.secret_arns)
        )
        return self

    def encrypt_bucket(self, key: str | None) -> None:
        by_default = (
            {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}
            if key
            else {"SSEAlgorithm": "AES256"}
        )
        self.client("s3").put_bucket_encryption(
            Bucket=self.bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": by_default}]
            },
        )

    def put_policy(self, document: dict[str, Any]) -> None:
        self.client("iam").put_role_policy(
            RoleName=self.role, PolicyName="portal-access", PolicyDocument=json.dumps(document)
        )

    def findings(self) -> list[str]:
        return [str(f) for f in audit(self.code, ENV, self.session)]


def test_a_tenant_built_as_the_stack_builds_it_passes(moto: MotoServer) -> None:
    tenant = Tenant(moto).build()
    assert tenant.findings() == []
    result = CliRunner().invoke(app, ["audit", tenant.code, "--target", "aws"])
    assert result.exit_code == 0, result.output
    assert f"{tenant.code}: no findings" in result.output


def _other_key(t: Tenant) -> None:
    t.encrypt_bucket(t.client("kms").create_key()["KeyMetadata"]["Arn"])


def _public(t: Tenant) -> None:
    t.client("s3").put_public_access_block(
        Bucket=t.bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": False,
            "RestrictPublicBuckets": True,
        },
    )


def _attach_broad_policy(t: Tenant) -> None:
    iam = t.client("iam")
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    arn = iam.create_policy(PolicyName=f"{t.code}-broad", PolicyDocument=json.dumps(document))[
        "Policy"
    ]["Arn"]
    iam.attach_role_policy(RoleName=t.role, PolicyArn=arn)


def _policy_of_everything(t: Tenant) -> None:
    document = names.portal_policy(f"arn:aws:s3:::{t.bucket}", t.key_arn, t.secret_arns)
    document["Statement"][2]["Resource"] = ["*"]
    t.put_policy(document)


def _policy_of_another_tenant(t: Tenant) -> None:
    other = f"arn:aws:s3:::{names.bucket_name('goa', ENV)}"
    t.put_policy(names.portal_policy(other, t.key_arn, t.secret_arns))


BROKEN: dict[str, tuple[Callable[[Tenant], None], str]] = {
    "bucket-with-s3-key": (
        lambda t: t.encrypt_bucket(None),
        "{bucket}: not encrypted with the tenant's KMS key (uses AES256)",
    ),
    "bucket-with-another-key": (_other_key, "{bucket}: not encrypted with the tenant's KMS key"),
    "public-access": (_public, "{bucket}: public access not blocked: BlockPublicPolicy off"),
    "versioning-suspended": (
        lambda t: t.client("s3").put_bucket_versioning(
            Bucket=t.bucket, VersioningConfiguration={"Status": "Suspended"}
        ),
        "{bucket}: versioning is not enabled",
    ),
    "deletion-protection-off": (
        lambda t: t.client("rds").modify_db_instance(
            DBInstanceIdentifier=t.database, DeletionProtection=False, ApplyImmediately=True
        ),
        "{database}: deletion protection is off",
    ),
    "short-backups": (
        lambda t: t.client("rds").modify_db_instance(
            DBInstanceIdentifier=t.database, BackupRetentionPeriod=1, ApplyImmediately=True
        ),
        "{database}: backups kept 1 days (at least 7 expected)",
    ),
    "secret-missing": (
        lambda t: t.client("secretsmanager").delete_secret(
            SecretId=names.secret_id(t.code, names.DJANGO_SECRET_KEY),
            ForceDeleteWithoutRecovery=True,
        ),
        "karmayogi/{code}/django-secret-key: the secret does not exist",
    ),
    "policy-of-everything": (
        _policy_of_everything,
        "{role}: policy portal-access allows *, not one of the tenant's",
    ),
    "policy-of-another-tenant": (
        _policy_of_another_tenant,
        "{role}: policy portal-access allows arn:aws:s3:::karmayogi-goa-production-media,",
    ),
    "managed-policy-attached": (
        _attach_broad_policy,
        "{role}: has the managed policy {code}-broad attached",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_broken_setting_is_named(moto: MotoServer, case: str) -> None:
    tenant = Tenant(moto).build()
    breaking, expected = BROKEN[case]
    breaking(tenant)
    expected = expected.format(
        bucket=tenant.bucket, database=tenant.database, role=tenant.role, code=tenant.code
    )
    findings = tenant.findings()
    assert any(f.startswith(expected) for f in findings), findings
    assert len(findings) <= 2, findings  # the broken setting, not a cascade


def test_a_database_password_without_rotation_is_named(moto: MotoServer) -> None:
    tenant = Tenant(moto).build(rotated=False)
    assert tenant.findings() == [
        f"{tenant.master_arn}: rotation of the database's master password is not configured"
    ]


def test_a_database_password_rds_does_not_keep_is_named(moto: MotoServer) -> None:
    tenant = Tenant(moto).build(managed=False)
    assert tenant.findings() == [
        f"{tenant.database}: the master password is not kept by RDS in Secrets Manager"
    ]


def test_an_unencrypted_database_is_named_and_the_command_fails(moto: MotoServer) -> None:
    tenant = Tenant(moto).build(encrypted_database=False)
    assert tenant.findings() == [f"{tenant.database}: storage is not encrypted"]
    result = CliRunner().invoke(app, ["audit", tenant.code, "--target", "aws"])
    assert result.exit_code == 1
    assert f"{tenant.database}: storage is not encrypted" in result.output


def test_a_tenant_never_deployed_is_named_resource_by_resource(moto: MotoServer) -> None:
    tenant = Tenant(moto)
    findings = tenant.findings()
    assert f"{names.key_alias(tenant.code, ENV)}: the tenant's KMS key does not exist" in findings
    assert f"{tenant.bucket}: the media bucket does not exist" in findings
    assert f"{tenant.role}: the portal's IAM role does not exist" in findings


def test_a_missing_region_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    with pytest.raises(KitError, match=r"^no AWS region: set AWS_REGION"):
        audit("bihar", ENV, boto3.session.Session())


def _expired_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A profile whose temporary credentials ran out, as an SSO sign-in's do: its
    credential_process hands botocore credentials whose expiry is past."""
    process = tmp_path / "credentials.sh"
    answer = {
        "Version": 1,
        "AccessKeyId": "ASIAEXPIREDEXAMPLE",
        "SecretAccessKey": "expired",
        "SessionToken": "expired",
        "Expiration": "2020-01-01T00:00:00Z",
    }
    process.write_text(f"#!/bin/sh\necho '{json.dumps(answer)}'\n", encoding="utf-8")
    process.chmod(0o700)
    config = tmp_path / "config"
    config.write_text(
        f"[profile expired]\nregion = ap-south-1\ncredential_process = {process}\n",
        encoding="utf-8",
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_PROFILE", "expired")


def test_expired_credentials_are_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _expired_profile(monkeypatch, tmp_path)
    result = CliRunner().invoke(app, ["audit", "bihar", "--target", "aws"])
    assert result.exit_code == 1
    assert result.stderr == "error: the AWS credentials have expired: sign in again\n"
    with pytest.raises(KitError, match=r"^the AWS credentials have expired: sign in again$"):
        AwsSecretStore().values("bihar")
