"""The Pulumi components of an AWS tenant (docs/aws.md): one ``TenantStack`` per tenant.

Each tenant gets its own KMS key; a media bucket encrypted with it (versioned, public access
blocked, lifecycle rules, CORS for the tenant's domain); an encrypted RDS PostgreSQL (backups
kept, deletion protection, class and Multi-AZ from the size table, master password kept by RDS
in Secrets Manager); the kit's secrets in Secrets Manager (values written by the kit, never by
Pulumi, so none is in the stack's state); and an IAM role the portal's service account takes
(IRSA) whose policy names only this tenant's bucket, key and secrets; the secrets' first values,
written by the kit during ``pulumi up`` (``infra.targets.aws.seeding``). On the cluster: the
tenant's namespace, the ``SecretStore`` and ``ExternalSecret`` bringing its secrets in, and the
``tenant-portal`` release with the kubernetes target's values made for EKS
(``infra.targets.aws.portal``); in front, an ACM certificate of its domain (validated by DNS)
and the domain's record pointing at the ALB the release's ingress gets.

Only the program entry reads ``pulumi.Config``; the component takes everything as arguments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.errors import KitError
from infra.render.sizes import SIZES
from infra.targets.aws import database, edge, external_secrets, names, portal
from infra.targets.aws.seeding import RandomValues
from infra.targets.kubernetes import CHARTS, PORTAL_CHART


@dataclass
class TenantStackArgs:
    code: str
    domain: str  # the portal's hostname, allowed by the bucket's CORS rules
    environment: str  # e.g. production, staging: part of every name and a tag
    size: str  # a key of infra.render.sizes.SIZES
    subnet_ids: list[str]  # the platform's private subnets, for the database
    database_security_group_ids: list[str]
    oidc_provider_arn: str  # the EKS cluster's OIDC provider (IRSA)
    oidc_issuer: str
    region: str
    vpc_cidr: str  # where the ALB's ip targets send traffic in from
    hosted_zone_id: str  # the Route 53 zone of the tenant's domain
    # The kubernetes target's values of the portal's release (KubernetesTarget.portal_values).
    portal_values: dict[str, Any]
    kubernetes: pulumi.ProviderResource | None = None  # the platform's cluster
    extra_tags: dict[str, str] = field(default_factory=dict)


class TenantStack(pulumi.ComponentResource):
    """Everything one tenant owns on AWS, named ``karmayogi-<code>-<environment>-…``."""

    def __init__(
        self, name: str, args: TenantStackArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("karmayogi:aws:TenantStack", name, None, opts)
        if args.size not in SIZES:
            raise KitError(
                f"tenant {args.code}: unknown size {args.size!r} (one of {', '.join(SIZES)})"
            )
        size = SIZES[args.size]
        code, env = args.code, args.environment
        base = names.prefix(code, env)
        tags = {**args.extra_tags, **names.tags(code, env)}
        child = pulumi.ResourceOptions(parent=self)

        self.key = aws.kms.Key(
            f"{base}-key",
            description=f"Karmayogi tenant {code} ({env}): media, database and secrets",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=tags,
            opts=child,
        )
        aws.kms.Alias(
            f"{base}-key-alias",
            name=names.key_alias(code, env),
            target_key_id=self.key.key_id,
            opts=child,
        )

        bucket = names.bucket_name(code, env)
        self.bucket = aws.s3.Bucket(bucket, bucket=bucket, tags=tags, opts=child)
        aws.s3.BucketVersioning(
            f"{bucket}-versioning",
            bucket=self.bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{bucket}-encryption",
            bucket=self.bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": self.key.arn,
                    },
                    "bucket_key_enabled": True,
                }
            ],
            opts=child,
        )
        aws.s3.BucketPublicAccessBlock(
            f"{bucket}-public-access",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{bucket}-lifecycle",
            bucket=self.bucket.id,
            rules=[
                {
                    "id": "old-versions",
                    "status": "Enabled",
                    "filter": {},
                    "noncurrent_version_expiration": {"noncurrent_days": 90},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                }
            ],
            opts=child,
        )
        aws.s3.BucketCorsConfiguration(
            f"{bucket}-cors",
            bucket=self.bucket.id,
            cors_rules=[
                {
                    "allowed_origins": [f"https://{args.domain}"],
                    "allowed_methods": ["GET", "HEAD"],
                    "allowed_headers": ["*"],
                    "max_age_seconds": 3600,
                }
            ],
            opts=child,
        )

        subnets = aws.rds.SubnetGroup(
            f"{base}-db-subnets",
            name=f"{base}-db",
            subnet_ids=args.subnet_ids,
            tags=tags,
            opts=child,
        )
        identifier = names.database_identifier(code, env)
        self.database = database.postgres(
            identifier,
            key=self.key,
            subnet_group=subnets,
            security_group_ids=args.database_security_group_ids,
            instance_class=size.database_class,
            storage_gb=size.database_storage_gb,
            multi_az=size.database_multi_az,
            db_name="portal",
            username="portal",
            tags=tags,
            opts=child,
        )

        self.secrets: dict[str, aws.secretsmanager.Secret] = {}
        for secret in names.SECRET_NAMES:
            self.secrets[secret] = aws.secretsmanager.Secret(
                f"{base}-{secret.replace('_', '-')}",
                name=names.secret_id(code, secret),
                kms_key_id=self.key.arn,
                recovery_window_in_days=30,
                tags=tags,
                opts=child,
            )
        # RDS keeps the master user's password in a secret of its own, under the tenant's key,
        # and rotates it (every 7 days unless changed); the portal reads it through its role.
        self.master_secret_arn: pulumi.Output[str] = self.database.master_user_secrets[0].secret_arn

        self.role = aws.iam.Role(
            names.role_name(code, env),
            name=names.role_name(code, env),
            assume_role_policy=json.dumps(
                names.trust_policy(args.oidc_provider_arn, args.oidc_issuer, code)
            ),
            tags=tags,
            opts=child,
        )
        self.policy_document: pulumi.Output[str] = pulumi.Output.all(
            self.bucket.arn,
            self.key.arn,
            *(s.arn for s in self.secrets.values()),
            self.master_secret_arn,
        ).apply(_policy_json)
        aws.iam.RolePolicy(
            f"{names.role_name(code, env)}-access",
            role=self.role.id,
            policy=self.policy_document,
            opts=child,
        )
        self._portal(args, base, tags)
        self.register_outputs(
            {
                "bucket": self.bucket.bucket,
                "key_arn": self.key.arn,
                "database_endpoint": self.database.endpoint,
                "role_arn": self.role.arn,
                "certificate_arn": self.certificate.arn,
            }
        )

    def _portal(self, args: TenantStackArgs, base: str, tags: dict[str, str]) -> None:
        """The certificate and DNS record of the domain; on the cluster, the namespace, the
        tenant's secrets and the portal's release."""
        code = args.code
        self.certificate, certificate_arn = edge.certificate(
            base, args.domain, args.hosted_zone_id, tags, self
        )
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.kubernetes)
        namespace = names.namespace(code)
        self.namespace = edge.namespace(namespace, f"{base}-namespace", tags, on_cluster)
        in_namespace = pulumi.ResourceOptions(
            parent=self, provider=args.kubernetes, depends_on=[self.namespace]
        )
        # Read with the portal's own IRSA role: this tenant's secrets and no one else's.
        store = external_secrets.secret_store(namespace, names.service_account(code), args.region)
        self.secret_store = external_secrets.resource(
            f"{base}-secret-store", "SecretStore", store, in_namespace
        )
        # The secrets' first values, before the ExternalSecret reads them.
        self.secret_values = RandomValues(
            f"{base}-secret-values",
            secret_ids=[s.name for s in self.secrets.values()],
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(self.secrets.values())),
        )
        self.external_secret = external_secrets.resource(
            f"{base}-external-secret",
            "ExternalSecret",
            pulumi.Output.all(self.database.endpoint, self.master_secret_arn).apply(
                lambda got: portal.external_secret(
                    code, args.portal_values, str(got[0]), str(got[1])
                )
            ),
            pulumi.ResourceOptions(
                parent=self,
                provider=args.kubernetes,
                depends_on=[self.secret_store, self.secret_values],
            ),
        )
        self.portal_values: pulumi.Output[dict[str, Any]] = pulumi.Output.all(
            self.role.arn, certificate_arn, self.bucket.bucket
        ).apply(
            lambda got: portal.aws_portal_values(
                args.portal_values,
                role_arn=str(got[0]),
                certificate_arn=str(got[1]),
                vpc_cidr=args.vpc_cidr,
                bucket=str(got[2]),
                region=args.region,
                kms_key=names.key_alias(code, args.environment),
            )
        )
        self.release = k8s.helm.v3.Release(
            f"{base}-release",
            name=portal.release_name(code),
            chart=str(CHARTS / PORTAL_CHART),
            namespace=namespace,
            values=self.portal_values,
            atomic=True,
            timeout=900,
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=args.kubernetes,
                depends_on=[self.namespace, self.external_secret, self.database],
            ),
        )
        self.record = edge.record_to_ingress(
            base,
            args.domain,
            args.hosted_zone_id,
            f"{namespace}/{portal.release_name(code)}",
            self.release,
            args.kubernetes,
            self,
        )


def _policy_json(arns: list[Any]) -> str:
    bucket_arn, key_arn, *secret_arns = (str(a) for a in arns)
    return json.dumps(names.portal_policy(bucket_arn, key_arn, secret_arns), sort_keys=True)
