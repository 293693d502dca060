"""The aws target's tenant stack under Pulumi's mocks (the engine and the AWS provider cannot
run here, docs/aws.md): every security property is read from the resources' inputs."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import pulumi
import pytest
from ruamel.yaml import YAML

from infra.commands.common import specs_in
from infra.errors import KitError
from infra.render.inputs import Secret
from infra.render.portal import validate_portal_settings
from infra.render.sizes import SIZES
from infra.targets.aws import names
from infra.targets.aws.deploy import portal_values
from infra.targets.aws.stack import TenantStack, TenantStackArgs

ACCOUNT = "123456789012"
TENANTS = Path(__file__).resolve().parents[3] / "tenants"
ALB = "k8s-karmayogi-0123456789.ap-south-1.elb.amazonaws.com"
MASTER_SECRET = f"arn:aws:secretsmanager:ap-south-1:{ACCOUNT}:secret:rds!db-1"


@functools.cache
def rendered_values(code: str) -> str:
    """The kubernetes target's values of ``code``'s portal release, as JSON (one render each)."""
    return json.dumps(portal_values(specs_in(TENANTS), code, {}))


class _Mocks(pulumi.runtime.Mocks):
    """Records each resource's inputs and gives it an ARN made of its type and name."""

    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(args)
        service = args.typ.split(":")[1].split("/")[0]
        state = {**args.inputs, "arn": f"arn:aws:{service}:ap-south-1:{ACCOUNT}:{args.name}"}
        if args.typ == "aws:rds/instance:Instance":  # RDS keeps the master user's password
            state["endpoint"] = f"{args.name}.abc.ap-south-1.rds.amazonaws.com:5432"
            state["masterUserSecrets"] = [{"secretArn": MASTER_SECRET}]
        if args.typ == "aws:kms/key:Key":
            state["keyId"] = f"key-{args.name}"
        if args.typ == "aws:acm/certificate:Certificate":  # what ACM asks to see in DNS
            state["domainValidationOptions"] = [
                {
                    "domainName": args.inputs["domainName"],
                    "resourceRecordName": f"_proof.{args.inputs['domainName']}.",
                    "resourceRecordType": "CNAME",
                    "resourceRecordValue": "_answer.acm-validations.aws.",
                }
            ]
        if args.typ == "aws:route53/record:Record":
            state["fqdn"] = args.inputs["name"]
        if args.typ == "kubernetes:networking.k8s.io/v1:Ingress":  # read: what the ALB got
            state["status"] = {"loadBalancer": {"ingress": [{"hostname": ALB}]}}
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
        region="ap-south-1",
        vpc_cidr="10.40.0.0/16",
        hosted_zone_id="Z0123456789",
        portal_values=json.loads(rendered_values(code)),
    )


def _build(*tenants: TenantStackArgs) -> tuple[_Mocks, list[TenantStack]]:
    """The tenants' stacks, built and every resource registered with the mocks."""
    mocks = _Mocks()
    pulumi.runtime.set_mocks(mocks, project="karmayogi", stack="test", preview=False)
    stacks: list[TenantStack] = []

    @pulumi.runtime.test  # type: ignore[untyped-decorator,unused-ignore]
    def program() -> pulumi.Output[Any]:
        stacks.extend(TenantStack(t.code, t) for t in tenants)
        return pulumi.Output.all(
            *(s.policy_document for s in stacks), *(s.record.records for s in stacks)
        )

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
    # The database's password is RDS's, rotated by RDS: no copy, no rotation function.
    assert "karmayogi/bihar/database-url" not in {s.inputs["name"] for s in secrets}
    assert mocks.of("aws:secretsmanager/secretRotation:SecretRotation") == []


def test_the_portals_role_names_only_this_tenants_bucket_key_and_secrets() -> None:
    mocks, _ = _build(_args())
    role = mocks.one("aws:iam/role:Role")
    (trust,) = json.loads(role["assumeRolePolicy"])["Statement"]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert trust["Condition"]["StringEquals"]["oidc.eks.example/id/ABC:sub"] == (
        "system:serviceaccount:karmayogi-bihar:portal-bihar"
    )
    document = json.loads(mocks.one("aws:iam/rolePolicy:RolePolicy")["policy"])
    resources = {r for s in document["Statement"] for r in s["Resource"]}
    arn = f"arn:aws:{{}}:ap-south-1:{ACCOUNT}:karmayogi-bihar-production-{{}}"
    assert resources == {
        arn.format("s3", "media"),
        arn.format("s3", "media") + "/*",
        arn.format("kms", "key"),
        *(arn.format("secretsmanager", n.replace("_", "-")) for n in names.SECRET_NAMES),
        # RDS's secret of the master password, which the ExternalSecret reads with this role.
        MASTER_SECRET,
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
    mocks, _ = _build(_args("bihar"), _args("rajasthan"))
    physical = ("bucket", "identifier", "name")
    by_tenant: dict[str, set[str]] = {"bihar": set(), "rajasthan": set()}
    for resource in mocks.resources:
        tenant = "bihar" if "bihar" in resource.name else "rajasthan"
        by_tenant[tenant].add(resource.name)
        by_tenant[tenant].update(str(resource.inputs[p]) for p in physical if p in resource.inputs)
    assert by_tenant["bihar"] and by_tenant["rajasthan"]
    assert by_tenant["bihar"].isdisjoint(by_tenant["rajasthan"])


# --- the portal on the cluster --------------------------------------------------------------

CHART = Path(__file__).resolve().parents[3] / "charts" / "tenant-portal"


def _helm_merge(defaults: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    merged = dict(defaults)
    for key, value in values.items():
        below = merged.get(key)
        both = isinstance(below, dict) and isinstance(value, dict)
        merged[key] = _helm_merge(below, value) if both else value  # type: ignore[arg-type]
    return merged


def test_the_release_has_the_rendered_values_made_for_eks_and_the_charts_schema_takes_them() -> (
    None
):
    mocks, _ = _build(_args())
    release = mocks.one("kubernetes:helm.sh/v3:Release")
    assert (release["name"], release["namespace"]) == ("portal-bihar", "karmayogi-bihar")
    assert Path(release["chart"]) == CHART
    values = release["values"]
    # As Helm checks them: the chart's defaults with the release's values over them.
    defaults = YAML(typ="safe", pure=True).load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator(schema).validate(_helm_merge(defaults, values))
    rendered = json.loads(rendered_values("bihar"))
    # What the kubernetes target renders reaches the release unchanged...
    for key in ("tenant", "image", "existingSecret", "logo", "resources"):
        assert values[key] == rendered[key], key
    # The database's URL is read from a file, again for each new connection (a rotated
    # password reaches the running portal); every other secret as rendered.
    database_url = rendered["secretEnv"].pop("DATABASE_URL")
    assert values["secretEnv"] == rendered["secretEnv"]
    assert values["secretFiles"] == {"DATABASE_URL": database_url}
    assert {k: v for k, v in values["jobs"].items() if k != "backup"} == {
        k: v for k, v in rendered["jobs"].items() if k != "backup"
    }
    # ...but for what EKS needs: the portal's IRSA role, an ALB with the ACM certificate,
    # traffic in from the VPC, media in the tenant's bucket.
    role = f"arn:aws:iam:ap-south-1:{ACCOUNT}:karmayogi-bihar-production-portal"
    assert values["serviceAccount"] == {"annotations": {"eks.amazonaws.com/role-arn": role}}
    certificate = f"arn:aws:acm:ap-south-1:{ACCOUNT}:karmayogi-bihar-production-certificate"
    annotations = values["ingress"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/certificate-arn"] == certificate
    assert values["ingress"]["className"] == "alb"
    assert values["ingress"]["host"] == "learn.bihar.example"
    assert values["networkPolicy"]["ingressController"]["cidr"] == "10.40.0.0/16"
    settings = values["settings"]
    assert settings["KARMAYOGI_MEDIA_S3_BUCKET"] == "karmayogi-bihar-production-media"
    assert "KARMAYOGI_MEDIA_ROOT" not in settings
    # Nightly, the portal's own database to its bucket under its key, 14 kept.
    assert values["jobs"]["backup"] == {
        "enabled": True,
        "schedule": rendered["jobs"]["backup"]["schedule"],
        "to": "s3://karmayogi-bihar-production-media/backups",
        "keep": 14,
        "sourceKey": "",
        "kmsKey": "alias/karmayogi-bihar-production",
    }
    # The settings with the secrets the pod gets from its Secret, unresolved here.
    given = {**values["secretEnv"], **values["secretFiles"]}
    secrets = {name: Secret(name, f"secret:{key}") for name, key in given.items()}
    validate_portal_settings({**settings, **secrets}, source="the release's settings")
    # The chart's aws scenario (linted and templated in tests/charts) is these values.
    scenario = YAML(typ="safe", pure=True).load((CHART / "ci" / "aws-values.yaml").read_text())
    assert scenario["ingress"]["annotations"].keys() == annotations.keys()
    assert scenario["settings"].keys() == settings.keys()
    assert scenario["serviceAccount"]["annotations"].keys() == {"eks.amazonaws.com/role-arn"}
    assert scenario["networkPolicy"] == values["networkPolicy"]
    assert scenario["jobs"] == values["jobs"]
    assert (scenario["secretEnv"], scenario["secretFiles"]) == (
        values["secretEnv"],
        values["secretFiles"],
    )


def test_the_external_secret_brings_in_only_this_tenants_secrets_with_its_own_role() -> None:
    mocks, _ = _build(_args())
    (external,) = mocks.of("kubernetes:external-secrets.io/v1:ExternalSecret")
    spec = external.inputs["spec"]
    assert spec["target"]["name"] == "karmayogi-portal"
    made = {s.inputs["name"] for s in mocks.of("aws:secretsmanager/secret:Secret")}
    read = {item["secretKey"]: item["remoteRef"] for item in spec["data"]}
    # The database's URL is composed from the password RDS keeps (and rotates) and the
    # database's address; every other key from this tenant's Secrets Manager entries.
    assert read.pop("database_username") == {"key": MASTER_SECRET, "property": "username"}
    assert read.pop("database_password") == {"key": MASTER_SECRET, "property": "password"}
    template = spec["target"]["template"]
    assert (template["engineVersion"], template["mergePolicy"]) == ("v2", "Merge")
    assert template["data"] == {
        "database-url": "postgresql://{{ .database_username | urlquery }}:"
        "{{ .database_password | urlquery }}"
        "@karmayogi-bihar-production-db.abc.ap-south-1.rds.amazonaws.com:5432/portal"
        "?sslmode=require"
    }
    assert {*read, "database-url"} == set(
        json.loads(rendered_values("bihar"))["secretEnv"].values()
    )
    assert {r["key"] for r in read.values()} <= made
    assert all(r["key"].startswith("karmayogi/bihar/") for r in read.values())
    (store,) = mocks.of("kubernetes:external-secrets.io/v1:SecretStore")
    assert spec["secretStoreRef"] == {
        "kind": "SecretStore",
        "name": store.inputs["metadata"]["name"],
    }
    assert store.inputs["metadata"]["namespace"] == "karmayogi-bihar"
    aws_provider = store.inputs["spec"]["provider"]["aws"]
    # Read with the portal's service account: the role whose policy names only these ARNs.
    assert aws_provider["auth"] == {"jwt": {"serviceAccountRef": {"name": "portal-bihar"}}}
    assert aws_provider["region"] == "ap-south-1"
    namespace = mocks.one("kubernetes:core/v1:Namespace")
    assert namespace["metadata"]["name"] == "karmayogi-bihar"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_domain_gets_a_dns_validated_certificate_and_a_record_to_the_alb() -> None:
    mocks, _ = _build(_args())
    certificate = mocks.one("aws:acm/certificate:Certificate")
    assert (certificate["domainName"], certificate["validationMethod"]) == (
        "learn.bihar.example",
        "DNS",
    )
    records = {r.inputs["name"]: r.inputs for r in mocks.of("aws:route53/record:Record")}
    proof = records["_proof.learn.bihar.example."]
    assert (proof["type"], proof["records"]) == ("CNAME", ["_answer.acm-validations.aws."])
    portal = records["learn.bihar.example"]
    assert (portal["zoneId"], portal["type"], portal["records"]) == ("Z0123456789", "CNAME", [ALB])
    validation = mocks.one("aws:acm/certificateValidation:CertificateValidation")
    assert validation["validationRecordFqdns"] == ["_proof.learn.bihar.example."]


def test_the_secrets_get_their_first_values_from_the_kit_before_the_portal_reads_them() -> None:
    """The stack makes the secrets without values; a step of the kit's own (a dynamic resource,
    seeding.RandomValues, tested against moto in test_secrets) gives each of them without a
    value a random one, so no value is in the state."""
    mocks, _ = _build(_args())
    (step,) = [r for r in mocks.resources if r.name == "karmayogi-bihar-production-secret-values"]
    assert step.typ == "pulumi-python:dynamic:Resource"
    inputs = dict(step.inputs)
    assert sorted(inputs["secret_ids"]) == sorted(
        names.secret_id("bihar", n) for n in names.SECRET_NAMES
    )
    # Nothing secret among its inputs: the store reads and writes the values itself.
    assert set(inputs) - {"__provider"} == {"name", "secret_ids"}
