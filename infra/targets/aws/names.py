"""What the aws target names and allows, shared by its Pulumi components and its audit.

Nothing here imports Pulumi or boto3: the stack program, the audit and the secret store agree
on names and on the portal's IAM policy through these functions alone.
"""

from __future__ import annotations

from typing import Any

from infra.render.inputs import CLIENT_SECRETS, DJANGO_SECRET_KEY

MANAGED_BY = "karmayogi"
# The kit's secrets of every tenant, in Secrets Manager as karmayogi/<code>/<name>. The
# database's password is not among them: RDS keeps it, and rotates it, in a secret of its own,
# from which the portal's ExternalSecret composes the portal's DATABASE_URL (portal.py).
SECRET_NAMES = (DJANGO_SECRET_KEY, *CLIENT_SECRETS)
# The key of the portal's Secret holding the composed URL.
DATABASE_URL_KEY = "database-url"
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
    return web_identity_trust(
        oidc_provider_arn, oidc_issuer, namespace(code), service_account(code)
    )


def web_identity_trust(
    oidc_provider_arn: str, oidc_issuer: str, in_namespace: str, account: str
) -> dict[str, Any]:
    """A role only the service account ``account`` of ``in_namespace`` may take (IRSA)."""
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
                        f"{issuer}:sub": f"system:serviceaccount:{in_namespace}:{account}",
                        f"{issuer}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }


# The tag the AWS Load Balancer Controller puts on what it makes, naming the cluster.
CLUSTER_TAG = "elbv2.k8s.aws/cluster"


def load_balancer_controller_policy(vpc_arn: str) -> dict[str, Any]:
    """What the AWS Load Balancer Controller may do: read the network, certificates and load
    balancers; make load balancers, target groups and security groups, tagged with the
    cluster, in this VPC; change and delete only those it tagged."""
    tagged = {"Null": {f"aws:ResourceTag/{CLUSTER_TAG}": "false"}}
    tagging = {"Null": {f"aws:RequestTag/{CLUSTER_TAG}": "false"}}
    elb = "elasticloadbalancing"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Read",
                "Effect": "Allow",
                "Action": [
                    "ec2:DescribeAccountAttributes",
                    "ec2:DescribeAddresses",
                    "ec2:DescribeAvailabilityZones",
                    "ec2:DescribeInternetGateways",
                    "ec2:DescribeVpcs",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeInstances",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeTags",
                    "ec2:GetSecurityGroupsForVpc",
                    f"{elb}:DescribeLoadBalancers",
                    f"{elb}:DescribeLoadBalancerAttributes",
                    f"{elb}:DescribeListeners",
                    f"{elb}:DescribeListenerAttributes",
                    f"{elb}:DescribeListenerCertificates",
                    f"{elb}:DescribeSSLPolicies",
                    f"{elb}:DescribeRules",
                    f"{elb}:DescribeTargetGroups",
                    f"{elb}:DescribeTargetGroupAttributes",
                    f"{elb}:DescribeTargetHealth",
                    f"{elb}:DescribeTags",
                    "acm:ListCertificates",
                    "acm:DescribeCertificate",
                ],
                "Resource": "*",  # describe calls take no resource-level permissions
            },
            {
                "Sid": "ServiceLinkedRole",
                "Effect": "Allow",
                "Action": ["iam:CreateServiceLinkedRole"],
                "Resource": "*",
                "Condition": {"StringEquals": {"iam:AWSServiceName": f"{elb}.amazonaws.com"}},
            },
            {
                "Sid": "SecurityGroupInVpc",
                "Effect": "Allow",
                "Action": ["ec2:CreateSecurityGroup"],
                "Resource": [vpc_arn],
            },
            {
                "Sid": "NewSecurityGroup",
                "Effect": "Allow",
                "Action": ["ec2:CreateSecurityGroup", "ec2:CreateTags"],
                "Resource": ["arn:aws:ec2:*:*:security-group/*"],
                "Condition": tagging,
            },
            {
                "Sid": "OwnSecurityGroups",
                "Effect": "Allow",
                "Action": [
                    "ec2:AuthorizeSecurityGroupIngress",
                    "ec2:RevokeSecurityGroupIngress",
                    "ec2:DeleteSecurityGroup",
                    "ec2:CreateTags",
                    "ec2:DeleteTags",
                ],
                "Resource": ["arn:aws:ec2:*:*:security-group/*"],
                "Condition": tagged,
            },
            {
                "Sid": "NewLoadBalancers",
                "Effect": "Allow",
                "Action": [
                    f"{elb}:CreateLoadBalancer",
                    f"{elb}:CreateTargetGroup",
                    f"{elb}:AddTags",
                ],
                "Resource": "*",
                "Condition": tagging,
            },
            {
                "Sid": "OwnLoadBalancers",
                "Effect": "Allow",
                "Action": [
                    f"{elb}:ModifyLoadBalancerAttributes",
                    f"{elb}:SetIpAddressType",
                    f"{elb}:SetSecurityGroups",
                    f"{elb}:SetSubnets",
                    f"{elb}:DeleteLoadBalancer",
                    f"{elb}:ModifyTargetGroup",
                    f"{elb}:ModifyTargetGroupAttributes",
                    f"{elb}:DeleteTargetGroup",
                    f"{elb}:RegisterTargets",
                    f"{elb}:DeregisterTargets",
                    f"{elb}:CreateListener",
                    f"{elb}:AddTags",
                    f"{elb}:RemoveTags",
                ],
                "Resource": "*",
                "Condition": tagged,
            },
            {
                # Listeners and rules carry no tag of their own: they live under the load
                # balancers above, which only this controller makes.
                "Sid": "ListenersAndRules",
                "Effect": "Allow",
                "Action": [
                    f"{elb}:ModifyListener",
                    f"{elb}:DeleteListener",
                    f"{elb}:AddListenerCertificates",
                    f"{elb}:RemoveListenerCertificates",
                    f"{elb}:CreateRule",
                    f"{elb}:ModifyRule",
                    f"{elb}:DeleteRule",
                ],
                "Resource": [
                    f"arn:aws:{elb}:*:*:listener/app/k8s-*",
                    f"arn:aws:{elb}:*:*:listener-rule/app/k8s-*",
                ],
            },
        ],
    }


def secrets_reader_policy(secret_arns: list[str], key_arn: str) -> dict[str, Any]:
    """Read these secrets (encrypted with ``key_arn``), nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Secrets",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                "Resource": sorted(secret_arns),
            },
            {
                "Sid": "SecretsKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt"],
                "Resource": [key_arn],
            },
        ],
    }
