"""PostgreSQL on RDS, made alike for a tenant's portal and a deployment's Keycloak: the
properties `karmayogi audit --target aws` checks live here once."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from infra.targets.aws import names

# The PostgreSQL major version; the portal image's pg_dump must be no older
# (tests/charts/test_containers.py checks it).
ENGINE_VERSION = "16"


def postgres(
    identifier: str,
    *,
    key: aws.kms.Key,
    subnet_group: aws.rds.SubnetGroup,
    security_group_ids: pulumi.Input[Sequence[pulumi.Input[str]]],
    instance_class: str,
    storage_gb: int,
    multi_az: bool,
    db_name: str,
    username: str,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> aws.rds.Instance:
    """Encrypted with ``key``, backups kept, deletion protected with a final snapshot, never
    public; RDS keeps the master password in Secrets Manager under the same key."""
    return aws.rds.Instance(
        identifier,
        identifier=identifier,
        engine="postgres",
        engine_version=ENGINE_VERSION,
        instance_class=instance_class,
        allocated_storage=storage_gb,
        multi_az=multi_az,
        storage_encrypted=True,
        kms_key_id=key.arn,
        backup_retention_period=names.BACKUP_RETENTION_DAYS,
        deletion_protection=True,
        skip_final_snapshot=False,
        final_snapshot_identifier=f"{identifier}-final",
        copy_tags_to_snapshot=True,
        publicly_accessible=False,
        db_subnet_group_name=subnet_group.name,
        vpc_security_group_ids=security_group_ids,
        db_name=db_name,
        username=username,
        manage_master_user_password=True,
        master_user_secret_kms_key_id=key.key_id,
        tags=tags,
        opts=opts,
    )
