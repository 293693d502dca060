"""A tenant's portal on EKS: its namespace, the ``ExternalSecret`` that brings its secrets in
from Secrets Manager, the ``tenant-portal`` release, and the certificate and DNS record of its
domain (docs/aws.md).

The release's values are the kubernetes target's (``karmayogi render <code> --target
kubernetes``, ``KubernetesTarget.portal_values``) with what AWS changes: the IRSA role on the
service account, an ALB ingress with the ACM certificate, traffic in from the VPC (the ALB's
ip targets), and media in the tenant's bucket.
"""

from __future__ import annotations

import copy
from typing import Any

from infra.errors import KitError
from infra.targets.aws import external_secrets, names
from infra.targets.aws.edge import alb_annotations

ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
# Where a tenant's backups go in its media bucket, and how many the CronJob keeps (as many
# days as RDS keeps its automated backups).
BACKUP_PREFIX = "backups"
BACKUPS_KEPT = names.BACKUP_RETENTION_DAYS
# Addresses no portal reaches over HTTPS on EKS: RFC 1918, shared (RFC 6598) and link-local
# (the instance metadata service) ranges.
PRIVATE_RANGES = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
)


def aws_portal_values(
    values: dict[str, Any],
    *,
    role_arn: str,
    certificate_arn: str,
    vpc_cidr: str,
    bucket: str,
    region: str,
    kms_key: str,
) -> dict[str, Any]:
    """The kubernetes target's values of a portal release, made for EKS; its nightly backup
    CronJob writes the portal's database to the tenant's bucket under the tenant's key."""
    out = copy.deepcopy(values)
    out["serviceAccount"] = {"annotations": {ROLE_ANNOTATION: role_arn}}
    out["ingress"] = {
        **out["ingress"],
        "className": "alb",
        "annotations": alb_annotations(certificate_arn),
    }
    out["networkPolicy"]["ingressController"] = {
        **out["networkPolicy"]["ingressController"],
        "cidr": vpc_cidr,
    }
    out["networkPolicy"]["egress"] = aws_egress(vpc_cidr)
    # The URL is composed from RDS's rotated secret and read from a file, again for each new
    # connection, so that a rotation reaches the running portal (tenant_portal/database).
    if "DATABASE_URL" in out["secretEnv"]:
        out["secretFiles"] = {
            **out.get("secretFiles", {}),
            "DATABASE_URL": out["secretEnv"].pop("DATABASE_URL"),
        }
    settings = out["settings"]
    settings.pop("KARMAYOGI_MEDIA_ROOT", None)
    settings["KARMAYOGI_MEDIA_S3_BUCKET"] = bucket
    settings["KARMAYOGI_MEDIA_S3_REGION"] = region
    out["jobs"]["backup"] = {
        **out["jobs"]["backup"],
        "enabled": True,
        "to": f"s3://{bucket}/{BACKUP_PREFIX}",
        "keep": BACKUPS_KEPT,
        "sourceKey": "",  # the portal's own database (media stay in the versioned bucket)
        "kmsKey": kms_key,
    }
    return out


def aws_egress(vpc_cidr: str) -> list[dict[str, Any]]:
    """Where a portal on EKS may connect besides DNS: its database in the VPC, and HTTPS to
    public addresses only. Keycloak and the hub are reached by their public names, at their
    internet-facing ALBs' addresses (which AWS changes), and S3, STS (IRSA) and KMS at their
    public endpoints, so no narrower list holds; the private ranges stay closed (the other
    tenants' pods and databases, the nodes' metadata service)."""
    return [
        {"name": "postgresql", "to": [{"cidr": vpc_cidr}], "ports": [5432]},
        {
            "name": "publicHttps",
            "to": [{"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}],
            "ports": [443],
        },
    ]


def external_secret(
    code: str, values: dict[str, Any], database_endpoint: str, master_secret_arn: str
) -> dict[str, Any]:
    """The ``ExternalSecret`` making the portal's Secret (``existingSecret``) from Secrets
    Manager: a key per ``secretEnv``/``secretFiles`` entry, each ``karmayogi/<code>/<key>``, but
    ``database-url``, composed from the master user RDS keeps and rotates in
    ``master_secret_arn`` and the database's address (``host:port``), TLS required."""
    known = {names.secret_id(code, n).rsplit("/", 1)[1] for n in names.SECRET_NAMES}
    keys = sorted({*values["secretEnv"].values(), *values.get("secretFiles", {}).values()})
    unknown = [k for k in keys if k not in known and k != names.DATABASE_URL_KEY]
    if unknown:
        raise KitError(f"tenant {code}: no Secrets Manager entry for {', '.join(unknown)}")
    data = [
        {"secretKey": key, "remoteRef": {"key": f"karmayogi/{code}/{key}"}}
        for key in keys
        if key != names.DATABASE_URL_KEY
    ]
    composed = None
    if names.DATABASE_URL_KEY in keys:
        data += [
            {
                "secretKey": f"database_{part}",
                "remoteRef": {"key": master_secret_arn, "property": part},
            }
            for part in ("username", "password")
        ]
        composed = {
            names.DATABASE_URL_KEY: "postgresql://{{ .database_username | urlquery }}:"
            "{{ .database_password | urlquery }}"
            f"@{database_endpoint}/portal?sslmode=require"
        }
    return external_secrets.external_secret(
        values["existingSecret"], names.namespace(code), data, composed
    )


def release_name(code: str) -> str:
    """As the kubernetes target names it (``helm upgrade --install portal-<code>``)."""
    return f"portal-{code}"
