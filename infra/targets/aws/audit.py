"""``karmayogi audit <code> --target aws``: a deployed tenant's security posture, read with boto3.

Each check reads what AWS says now, not what the stack meant to make, so a setting changed by
hand in the console is found. boto3 finds the account, region and endpoint the usual way
(``AWS_PROFILE``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``, …).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import boto3
import botocore.exceptions

from infra.errors import KitError
from infra.targets.aws import names

MIN_BACKUP_RETENTION_DAYS = 7
_PUBLIC_ACCESS_SETTINGS = (
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
)
_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}
_UNKNOWN_CREDENTIALS = {"InvalidClientTokenId", "UnrecognizedClientException"}


@dataclass(frozen=True)
class Finding:
    resource: str
    problem: str

    def __str__(self) -> str:
        return f"{self.resource}: {self.problem}"


def _code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def aws_client(service: str, session: boto3.session.Session | None = None) -> Any:
    """A boto3 client, or one clear line when no region or no credentials are set, or the
    temporary credentials (SSO, ``credential_process``) have expired."""
    session = session or boto3.session.Session()
    try:
        client = session.client(service)
        credentials = session.get_credentials()
        if credentials is not None:
            # Temporary credentials are renewed here; botocore says RuntimeError when what it
            # got back has expired too (an SSO sign-in that has run out).
            credentials.get_frozen_credentials()
    except botocore.exceptions.NoRegionError:
        raise KitError("no AWS region: set AWS_REGION (or a profile's region)") from None
    except RuntimeError as error:
        if "expired" not in str(error):
            raise
        raise KitError("the AWS credentials have expired: sign in again") from None
    except botocore.exceptions.CredentialRetrievalError:
        raise KitError("no AWS credentials could be had from the profile: sign in again") from None
    return client


def audit(
    code: str, environment: str, session: boto3.session.Session | None = None
) -> list[Finding]:
    """Every way the tenant's resources fall short of the aws target's posture."""
    client: Callable[[str], Any] = lambda service: aws_client(service, session)  # noqa: E731
    try:
        return list(_findings(code, environment, client))
    except botocore.exceptions.NoCredentialsError:
        raise KitError("no AWS credentials: set AWS_PROFILE or sign in (aws sso login)") from None
    except botocore.exceptions.ClientError as error:
        if _code(error) in _EXPIRED:
            raise KitError("the AWS credentials have expired: sign in again") from None
        if _code(error) in _UNKNOWN_CREDENTIALS:
            raise KitError("AWS does not know these credentials: check AWS_PROFILE") from None
        raise KitError(
            f"AWS refused {error.operation_name} ({_code(error)}) while auditing {code}"
        ) from None


def _findings(code: str, env: str, client: Callable[[str], Any]) -> Iterator[Finding]:
    key_arn = yield from _key(code, env, client("kms"))
    bucket_arn = yield from _bucket(names.bucket_name(code, env), key_arn, client("s3"))
    secretsmanager = client("secretsmanager")
    master = yield from _database(
        names.database_identifier(code, env), key_arn, client("rds"), secretsmanager
    )
    secret_arns = yield from _secrets(code, secretsmanager)
    allowed = {bucket_arn, f"{bucket_arn}/*", *secret_arns, *([master] if master else [])}
    if key_arn:
        allowed.add(key_arn)
    yield from _role(names.role_name(code, env), allowed, client("iam"))


def _key(code: str, env: str, kms: Any) -> Generator[Finding, None, str | None]:
    alias = names.key_alias(code, env)
    try:
        key = kms.describe_key(KeyId=alias)["KeyMetadata"]
    except botocore.exceptions.ClientError as error:
        if _code(error) != "NotFoundException":
            raise
        yield Finding(alias, "the tenant's KMS key does not exist")
        return None
    return str(key["Arn"])


def _bucket(bucket: str, key_arn: str | None, s3: Any) -> Generator[Finding, None, str]:
    arn = f"arn:aws:s3:::{bucket}"
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
            "Rules"
        ]
    except botocore.exceptions.ClientError as error:
        if _code(error) == "NoSuchBucket":
            yield Finding(bucket, "the media bucket does not exist")
            return arn
        if _code(error) != "ServerSideEncryptionConfigurationNotFoundError":
            raise
        rules = []
    defaults = [r.get("ApplyServerSideEncryptionByDefault", {}) for r in rules]
    keys = {d.get("KMSMasterKeyID") for d in defaults if d.get("SSEAlgorithm") == "aws:kms"}
    if key_arn is not None and key_arn not in keys and key_arn.split("/")[-1] not in keys:
        used = ", ".join(str(d.get("KMSMasterKeyID") or d.get("SSEAlgorithm")) for d in defaults)
        yield Finding(bucket, f"not encrypted with the tenant's KMS key (uses {used or 'nothing'})")
    try:
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except botocore.exceptions.ClientError as error:
        if _code(error) != "NoSuchPublicAccessBlockConfiguration":
            raise
        block = {}
    open_ = [s for s in _PUBLIC_ACCESS_SETTINGS if not block.get(s)]
    if open_:
        yield Finding(bucket, f"public access not blocked: {', '.join(open_)} off")
    if s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
        yield Finding(bucket, "versioning is not enabled")
    return arn


def _database(
    identifier: str, key_arn: str | None, rds: Any, secretsmanager: Any
) -> Generator[Finding, None, str | None]:
    """The database's findings; the ARN of the secret RDS keeps its master password in."""
    try:
        (db,) = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
    except botocore.exceptions.ClientError as error:
        if _code(error) != "DBInstanceNotFound":
            raise
        yield Finding(identifier, "the database does not exist")
        return None
    if not db.get("StorageEncrypted"):
        yield Finding(identifier, "storage is not encrypted")
    elif key_arn is not None and db.get("KmsKeyId") not in (key_arn, key_arn.split("/")[-1]):
        yield Finding(identifier, "storage is not encrypted with the tenant's KMS key")
    if not db.get("DeletionProtection"):
        yield Finding(identifier, "deletion protection is off")
    retention = int(db.get("BackupRetentionPeriod", 0))
    if retention < MIN_BACKUP_RETENTION_DAYS:
        yield Finding(
            identifier,
            f"backups kept {retention} days (at least {MIN_BACKUP_RETENTION_DAYS} expected)",
        )
    master = db.get("MasterUserSecret", {}).get("SecretArn")
    if not master:
        yield Finding(identifier, "the master password is not kept by RDS in Secrets Manager")
        return None
    if not secretsmanager.describe_secret(SecretId=master).get("RotationEnabled"):
        yield Finding(master, "rotation of the database's master password is not configured")
    return str(master)


def _secrets(code: str, secretsmanager: Any) -> Generator[Finding, None, list[str]]:
    arns: list[str] = []
    for name in names.SECRET_NAMES:
        secret_id = names.secret_id(code, name)
        try:
            secret = secretsmanager.describe_secret(SecretId=secret_id)
        except botocore.exceptions.ClientError as error:
            if _code(error) != "ResourceNotFoundException":
                raise
            yield Finding(secret_id, "the secret does not exist")
            continue
        if secret.get("DeletedDate"):
            yield Finding(secret_id, "the secret is scheduled for deletion")
        arns.append(str(secret["ARN"]))
    return arns


def _role(role: str, allowed: set[str], iam: Any) -> Iterator[Finding]:
    try:
        policies = iam.list_role_policies(RoleName=role)["PolicyNames"]
    except botocore.exceptions.ClientError as error:
        if _code(error) != "NoSuchEntity":
            raise
        yield Finding(role, "the portal's IAM role does not exist")
        return
    for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
        yield Finding(role, f"has the managed policy {attached['PolicyName']} attached")
    for policy in policies:
        document = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
        if isinstance(document, str):
            document = json.loads(unquote(document))
        statements = document.get("Statement", [])
        for statement in statements if isinstance(statements, list) else [statements]:
            if statement.get("Effect") != "Allow":
                continue
            resources = statement.get("Resource", [])
            for resource in [resources] if isinstance(resources, str) else resources:
                if resource not in allowed:
                    yield Finding(
                        role, f"policy {policy} allows {resource}, not one of the tenant's"
                    )
