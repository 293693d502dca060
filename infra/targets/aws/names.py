"""What the aws target names and allows, shared by its Pulumi components and its audit.

Nothing here imports Pulumi or boto3: the stack program, the audit and the secret store agree
on names and on the portal's IAM policy through these functions alone.
"""

from __future__ import annotations

from typing import Any

from infra.render.inputs import CLIENT_SECRETS, DATABASE_URL, DJANGO_SECRET_KEY

MANAGED_BY = "karmayogi"
# The kit's secrets of every tenant, in Secrets Manager as karmayogi/<code>/<name>.
SECRET_NAMES = (DATABASE_URL, DJANGO_SECRET_KEY, *CLIENT_SECRETS)
# Secrets a rotation Lambda renews (the client secrets are Keycloak's, renewed by the reconciler;
# the Django key would sign everyone out).
ROTATED_SECRETS = (DATABASE_URL,)
ROTATION_DAYS = 30
BACKUP_RETENTION_DAYS = 14


def prefix(code: str, environment: str) -> str:
    """Every resource of a tenant's stack is named after this."""
    return f"karmayogi-{code}-{environment}"


def bucket_name(code: str, environment: str) -> str:
    return f"{prefix(code, environment)}-media"


def database_identifier(code: str, environment: str) -> str:
    return f"{prefix(code, environment)}-db"


def role_name(code: str, environment: str) -> str:
    return f"{prefix(code, environment)}-portal"


def key_alias(code: str, environment: str) -> str:
    return f"alias/{prefix(code, environment)}"


def namespace(code: str) -> str:
    """The tenant's Kubernetes namespace (as the kubernetes target names it)."""
    return f"karmayogi-{code}"


def secret_id(code: str, name: str) -> str:
    """The Secrets Manager name of a tenant's secret (the aws target's references)."""
    return f"karmayogi/{code}/{name.replace('_', '-')}"


def service_account(code: str) -> str:
    """The portal's Kubernetes service account, as charts/tenant-portal names it."""
    return f"portal-{code}"


def tags(code: str, environment: str) -> dict[str, str]:
    return {"tenant": code, "environment": environment, "managed-by": MANAGED_BY}


def portal_policy(bucket_arn: str, key_arn: str, secret_arns: list[str]) -> dict[str, Any]:
    """The portal's IAM policy: its own bucket, key and secrets, and nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListMedia",
                "Effect": "Allow",
                # The encryption: `karmayogi backup --s3-kms-key` checks the bucket's key.
                "Action": ["s3:ListBucket", "s3:GetEncryptionConfiguration"],
                "Resource": [bucket_arn],
            },
            {
                "Sid": "Media",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": [f"{bucket_arn}/*"],
            },
            {
                "Sid": "MediaKey",
                "Effect": "Allow",
                "Action": [
                    "kms:Decrypt",
                    "kms:Encrypt",
                    "kms:GenerateDataKey",
                    "kms:DescribeKey",
                ],
                "Resource": [key_arn],
            },
            {
                "Sid": "Secrets",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                "Resource": sorted(secret_arns),
            },
        ],
    }


def trust_policy(oidc_provider_arn: str, oidc_issuer: str, code: str) -> dict[str, Any]:
    """Who may take the portal's role: the tenant's service account alone (IRSA)."""
    issuer = oidc_issuer.removeprefix("https://")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{issuer}:sub": f"system:serviceaccount:{namespace(code)}:"
                        f"{service_account(code)}",
                        f"{issuer}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }
