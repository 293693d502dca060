"""The aws platform (network, EKS, OIDC, the cluster's operators, Keycloak) under Pulumi's
mocks (docs/aws.md)."""

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
from infra.targets.aws.deploy import (
    PLATFORM_OUTPUTS,
    platform_config,
    platform_program,
    rendered_values,
)
from infra.targets.aws.platform import Platform, PlatformArgs, aws_keycloak_values
from tests.infra.aws.test_stack import ACCOUNT, ALB, TENANTS, _helm_merge, _Mocks

KEYCLOAK_CHART = Path(__file__).resolve().parents[3] / "charts" / "keycloak"
MASTER_SECRET = f"arn:aws:secretsmanager:ap-south-1:{ACCOUNT}:secret:rds!db-0123"


@functools.cache
def keycloak_values() -> str:
    """The kubernetes target's values of bihar's deployment's Keycloak, as JSON."""
    return json.dumps(rendered_values(specs_in(TENANTS), "bihar", {})[1])


ISSUER = "https://oidc.eks.ap-south-1.amazonaws.com/id/ABC"


class _ClusterMocks(_Mocks):
    """The stack's mocks, with what EKS itself reports about a cluster."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        name, state = super().new_resource(args)
        if args.typ == "aws:eks/cluster:Cluster":
            state["identities"] = [{"oidcs": [{"issuer": ISSUER}]}]
            state["vpcConfig"] = {**state["vpcConfig"], "clusterSecurityGroupId": "sg-cluster"}
            state["endpoint"] = "https://ABC.gr7.ap-south-1.eks.amazonaws.com"
            state["certificateAuthority"] = {"data": "LS0tLS1CRUdJTi0tLS0t"}
        if args.typ == "aws:rds/instance:Instance":
            state["address"] = f"{args.name}.abc.ap-south-1.rds.amazonaws.com"
            state["masterUserSecrets"] = [{"secretArn": MASTER_SECRET}]
        return name, state


def _build(zones: list[str]) -> tuple[_ClusterMocks, dict[str, Any]]:
    mocks = _ClusterMocks()
    pulumi.runtime.set_mocks(mocks, project="karmayogi", stack="platform", preview=False)
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator,unused-ignore]
    def program() -> pulumi.Output[Any]:
        platform = Platform(
            "platform",
            PlatformArgs(
                "production",
                zones,
                hosted_zone_id="Z0123456789",
                keycloak_values=json.loads(keycloak_values()),
            ),
        )
        names = list(platform.outputs)
        return pulumi.Output.all(*platform.outputs.values()).apply(
            lambda values: outputs.update(zip(names, values, strict=True))
        )

    program()
    return mocks, outputs


def test_the_cluster_is_private_encrypted_and_spread_across_zones() -> None:
    mocks, outputs = _build(["ap-south-1a", "ap-south-1b", "ap-south-1c"])
    subnets = mocks.of("aws:ec2/subnet:Subnet")
    private = [s.inputs for s in subnets if "private" in s.name]
    assert {s["availabilityZone"] for s in private} == {"ap-south-1a", "ap-south-1b", "ap-south-1c"}
    cidrs = [s.inputs["cidrBlock"] for s in subnets]
    assert len(set(cidrs)) == len(cidrs) == 6
    cluster = mocks.one("aws:eks/cluster:Cluster")
    # No admin range given: the API is reached from inside the VPC only.
    assert cluster["vpcConfig"]["endpointPublicAccess"] is False
    assert cluster["vpcConfig"]["endpointPrivateAccess"] is True
    assert "publicAccessCidrs" not in cluster["vpcConfig"]
    assert cluster["encryptionConfig"]["resources"] == ["secrets"]
    # NetworkPolicy is enforced (the VPC CNI leaves it off unless told).
    cni = mocks.one("aws:eks/addon:Addon")
    assert cni["addonName"] == "vpc-cni"
    assert json.loads(cni["configurationValues"]) == {"enableNetworkPolicy": "true"}
    assert cluster["encryptionConfig"]["provider"]["keyArn"].endswith("-eks-secrets")
    nodes = mocks.one("aws:eks/nodeGroup:NodeGroup")
    assert sorted(nodes["subnetIds"]) == sorted(
        f"{s.name}-id" for s in subnets if "private" in s.name
    )
    (ingress,) = mocks.one("aws:ec2/securityGroup:SecurityGroup")["ingress"]
    assert (ingress["fromPort"], ingress["toPort"], ingress["securityGroups"]) == (
        5432,
        5432,
        ["sg-cluster"],
    )
    assert mocks.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider")["url"] == ISSUER
    # What the tenant stacks read by StackReference (deploy.program).
    assert outputs["oidcIssuer"] == ISSUER
    assert len(outputs["privateSubnetIds"]) == 3
    assert outputs["databaseSecurityGroupIds"] == ["karmayogi-platform-production-databases-id"]
    assert outputs["vpcCidr"] == "10.40.0.0/16"
    assert outputs["hostedZoneId"] == "Z0123456789"
    kubeconfig = json.loads(outputs["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"].startswith("https://ABC.")
    assert kubeconfig["users"][0]["user"]["exec"]["args"][:2] == ["eks", "get-token"]


def test_private_subnets_reach_out_through_the_nat_gateway_of_their_own_zone() -> None:
    zones = ["ap-south-1a", "ap-south-1b"]
    mocks, _ = _build(zones)
    nats = {n.name: n.inputs for n in mocks.of("aws:ec2/natGateway:NatGateway")}
    tables = {t.name: t.inputs for t in mocks.of("aws:ec2/routeTable:RouteTable")}
    links = {
        a.name: a.inputs for a in mocks.of("aws:ec2/routeTableAssociation:RouteTableAssociation")
    }
    base = "karmayogi-platform-production"
    (public_route,) = tables[f"{base}-public"]["routes"]
    assert public_route == {"cidrBlock": "0.0.0.0/0", "gatewayId": f"{base}-igw-id"}
    for zone in zones:
        # The NAT gateway stands in the zone's public subnet...
        assert nats[f"{base}-nat-{zone}"]["subnetId"] == f"{base}-public-{zone}-id"
        # ...and the zone's private subnet goes out through it, and only it.
        (route,) = tables[f"{base}-private-{zone}"]["routes"]
        assert route == {"cidrBlock": "0.0.0.0/0", "natGatewayId": f"{base}-nat-{zone}-id"}
        private = links[f"{base}-private-{zone}"]
        assert private == {
            "subnetId": f"{base}-private-{zone}-id",
            "routeTableId": f"{base}-private-{zone}-id",
        }
        assert links[f"{base}-public-{zone}"]["routeTableId"] == f"{base}-public-id"


def _releases(mocks: _ClusterMocks) -> dict[str, dict[str, Any]]:
    return {r.inputs["name"]: r.inputs for r in mocks.of("kubernetes:helm.sh/v3:Release")}


def _role_policy(mocks: _ClusterMocks, role: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A role's trust and its one inline policy."""
    roles = {r.name: r.inputs for r in mocks.of("aws:iam/role:Role")}
    policies = {p.name: p.inputs for p in mocks.of("aws:iam/rolePolicy:RolePolicy")}
    return json.loads(roles[role]["assumeRolePolicy"]), json.loads(
        policies[f"{role}-access"]["policy"]
    )


def test_the_load_balancer_controller_may_change_only_what_it_tagged_and_eso_has_no_role() -> None:
    mocks, _ = _build(["ap-south-1a", "ap-south-1b"])
    releases = _releases(mocks)
    controller = releases["aws-load-balancer-controller"]
    assert (controller["namespace"], controller["repositoryOpts"]["repo"]) == (
        "kube-system",
        "https://aws.github.io/eks-charts",
    )
    role = "karmayogi-platform-production-load-balancer-controller"
    annotations = controller["values"]["serviceAccount"]["annotations"]
    assert annotations == {"eks.amazonaws.com/role-arn": f"arn:aws:iam:ap-south-1:{ACCOUNT}:{role}"}
    trust, policy = _role_policy(mocks, role)
    (statement,) = trust["Statement"]
    assert (
        statement["Condition"]["StringEquals"]["oidc.eks.ap-south-1.amazonaws.com/id/ABC:sub"]
        == "system:serviceaccount:kube-system:aws-load-balancer-controller"
    )
    for rule in policy["Statement"]:
        actions = rule["Action"]
        assert not any(a.endswith(":*") or a == "*" for a in actions), rule["Sid"]
        writes = [a for a in actions if not a.split(":")[1].startswith(("Describe", "List", "Get"))]
        if writes and rule["Resource"] == "*":
            # Anything it may change anywhere, it may change only when tagged with the cluster.
            assert rule.get("Condition"), rule["Sid"]
    eso = releases["external-secrets"]
    assert eso["repositoryOpts"]["repo"] == "https://charts.external-secrets.io"
    assert "serviceAccount" not in eso["values"]
    assert not [r for r in mocks.of("aws:iam/role:Role") if "external-secrets" in r.name]


def test_keycloak_runs_on_an_encrypted_rds_with_its_secrets_brought_in_by_its_own_role() -> None:
    mocks, _ = _build(["ap-south-1a", "ap-south-1b"])
    (database,) = mocks.of("aws:rds/instance:Instance")
    db = database.inputs
    assert db["storageEncrypted"] is True and db["deletionProtection"] is True
    assert db["multiAz"] is True and db["publiclyAccessible"] is False
    assert db["manageMasterUserPassword"] is True and "password" not in db
    assert db["vpcSecurityGroupIds"] == ["karmayogi-platform-production-databases-id"]
    release = _releases(mocks)["keycloak-bihar"]
    assert release["namespace"] == "karmayogi-keycloak"
    values = release["values"]
    defaults = YAML(typ="safe", pure=True).load((KEYCLOAK_CHART / "values.yaml").read_text())
    schema = json.loads((KEYCLOAK_CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator(schema).validate(_helm_merge(defaults, values))
    rendered = json.loads(keycloak_values())
    for key in ("deployment", "image", "hostname", "replicas", "secretKeys"):
        assert values[key] == rendered[key], key
    # No realm Job on the cluster: the kit applies the realms after each deploy, with the
    # secrets in Secrets Manager (infra/targets/aws/realms.py, tests/production).
    assert values["realms"] == {**rendered["realms"], "enabled": False}
    assert values["database"]["host"] == f"{database.name}.abc.ap-south-1.rds.amazonaws.com"
    assert values["ingress"]["className"] == "alb"
    assert values["proxyTrustedAddresses"] == ["10.40.0.0/16"]
    # The Secret the chart reads, made from Secrets Manager: the RDS-kept password and the
    # deployment's own entries, read by a role that may read those and nothing else.
    (external,) = [
        e.inputs
        for e in mocks.of("kubernetes:external-secrets.io/v1:ExternalSecret")
        if e.inputs["metadata"]["namespace"] == "karmayogi-keycloak"
    ]
    data = {d["secretKey"]: d["remoteRef"] for d in external["spec"]["data"]}
    assert external["spec"]["target"]["name"] == values["existingSecret"]
    # Keycloak signs in as a user of its own, whose password RDS does not rotate; the hook Job
    # that makes that user reads RDS's master user (rotated) from the same Secret.
    assert data["keycloak-db-password"] == {"key": "karmayogi/bihar/keycloak-db-password"}
    admin = values["databaseUser"]["adminSecretKeys"]
    assert data[admin["username"]] == {"key": MASTER_SECRET, "property": "username"}
    assert data[admin["password"]] == {"key": MASTER_SECRET, "property": "password"}
    assert values["databaseUser"]["enabled"] is True
    assert values["databaseUser"]["image"] == rendered["realms"]["image"]
    assert db["username"] == "karmayogi_admin" != values["database"]["username"]
    assert data["keycloak-bootstrap-client-secret"] == {
        "key": "karmayogi/bihar/keycloak-bootstrap-client-secret"
    }
    assert set(data) == {
        "keycloak-db-password",
        "keycloak-bootstrap-client-secret",
        admin["username"],
        admin["password"],
    }
    # The bootstrap secret's value is the kit's (random, before Keycloak first starts), never
    # Pulumi's; the accounts' secret is written by the realm step.
    (seed,) = [r for r in mocks.resources if r.name.endswith("-keycloak-secret-values")]
    assert seed.typ == "pulumi-python:dynamic:Resource"
    assert seed.inputs["secret_ids"] == [
        "karmayogi/bihar/keycloak-bootstrap-client-secret",
        "karmayogi/bihar/keycloak-db-password",
    ]
    secret_names = {s.inputs["name"] for s in mocks.of("aws:secretsmanager/secret:Secret")}
    assert "karmayogi/bihar/keycloak-accounts" in secret_names
    trust, policy = _role_policy(mocks, "karmayogi-platform-production-keycloak-secrets")
    (statement,) = trust["Statement"]
    assert (
        statement["Condition"]["StringEquals"]["oidc.eks.ap-south-1.amazonaws.com/id/ABC:sub"]
        == "system:serviceaccount:karmayogi-keycloak:keycloak-secrets"
    )
    arn = f"arn:aws:secretsmanager:ap-south-1:{ACCOUNT}:karmayogi-platform-production-keycloak-"
    secrets, key = policy["Statement"]
    assert set(secrets["Resource"]) == {
        MASTER_SECRET,
        arn + "keycloak-bootstrap-client-secret",
        arn + "keycloak-db-password",
    }
    assert key["Resource"] == [
        f"arn:aws:kms:ap-south-1:{ACCOUNT}:karmayogi-platform-production-keycloak-key"
    ]
    records = {r.inputs["name"]: r.inputs for r in mocks.of("aws:route53/record:Record")}
    assert records["auth.learn.bihar.example"]["records"] == [ALB]


def test_the_keycloak_charts_aws_scenario_is_what_the_platform_makes() -> None:
    """`charts/keycloak/ci/aws-values.yaml` (linted and templated in tests/charts) is the
    platform's values for the example deployment, so the chart is checked as aws runs it."""
    scenario = YAML(typ="safe", pure=True).load(
        (KEYCLOAK_CHART / "ci" / "aws-values.yaml").read_text()
    )
    made = aws_keycloak_values(
        json.loads(keycloak_values()),
        "karmayogi-platform-production-keycloak-db.abc.ap-south-1.rds.amazonaws.com",
        "arn:aws:acm:ap-south-1:123456789012:certificate/keycloak",
        "10.40.0.0/16",
    )
    assert scenario == made


def test_one_availability_zone_is_refused() -> None:
    with pytest.raises(KitError, match=r"^the aws platform needs two or more availability zones$"):
        _build(["ap-south-1a"])


def test_the_platform_program_builds_from_its_config_and_exports_what_tenants_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`karmayogi platform deploy`'s program: the configuration `platform_config` sets makes
    the platform, and every output a tenant stack reads (deploy.PLATFORM_OUTPUTS) is exported."""
    config = platform_config(
        "bihar",
        {
            "AWS_REGION": "ap-south-1",
            "KARMAYOGI_AWS_ZONES": "ap-south-1a,ap-south-1c",
            "KARMAYOGI_AWS_HOSTED_ZONE_ID": "Z0123456789",
            "KARMAYOGI_AWS_ADMIN_CIDRS": "203.0.113.0/24",
        },
    )
    mocks = _ClusterMocks()
    pulumi.runtime.set_mocks(mocks, project="karmayogi-platform", stack="bihar", preview=False)
    pulumi.runtime.set_all_config(config)
    exported: dict[str, Any] = {}
    monkeypatch.setattr(pulumi, "export", lambda name, value: exported.update({name: value}))

    @pulumi.runtime.test  # type: ignore[untyped-decorator,unused-ignore]
    def run() -> pulumi.Output[Any]:
        platform_program(json.loads(keycloak_values()))
        names = list(exported)
        return pulumi.Output.all(*exported.values()).apply(
            lambda values: exported.update(zip(names, values, strict=True))
        )

    try:
        run()
    finally:
        pulumi.runtime.set_all_config({})
    assert set(exported) == set(PLATFORM_OUTPUTS)
    assert exported["hostedZoneId"] == "Z0123456789"
    private = [s.inputs for s in mocks.of("aws:ec2/subnet:Subnet") if "private" in s.name]
    assert {s["availabilityZone"] for s in private} == {"ap-south-1a", "ap-south-1c"}
    # The operators' range reaches the cluster's API (the same update installs its releases
    # from their machine), and no other address does.
    endpoint = mocks.one("aws:eks/cluster:Cluster")["vpcConfig"]
    assert endpoint["endpointPublicAccess"] is True
    assert endpoint["publicAccessCidrs"] == ["203.0.113.0/24"]
    # The deployment's Keycloak, with its chart's release.
    assert "keycloak-bihar" in _releases(mocks)
