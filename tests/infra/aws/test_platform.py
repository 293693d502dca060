"""The aws platform (network, EKS, OIDC) under Pulumi's mocks (docs/aws.md)."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from infra.errors import KitError
from infra.targets.aws.platform import Platform, PlatformArgs
from tests.infra.aws.test_stack import _Mocks

ISSUER = "https://oidc.eks.ap-south-1.amazonaws.com/id/ABC"


class _ClusterMocks(_Mocks):
    """The stack's mocks, with what EKS itself reports about a cluster."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        name, state = super().new_resource(args)
        if args.typ == "aws:eks/cluster:Cluster":
            state["identities"] = [{"oidcs": [{"issuer": ISSUER}]}]
            state["vpcConfig"] = {**state["vpcConfig"], "clusterSecurityGroupId": "sg-cluster"}
        return name, state


def _build(zones: list[str]) -> tuple[_ClusterMocks, dict[str, Any]]:
    mocks = _ClusterMocks()
    pulumi.runtime.set_mocks(mocks, project="karmayogi", stack="platform", preview=False)
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test  # type: ignore[untyped-decorator,unused-ignore]
    def program() -> pulumi.Output[Any]:
        platform = Platform("platform", PlatformArgs("production", zones))
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
    assert cluster["vpcConfig"]["endpointPublicAccess"] is False
    assert cluster["vpcConfig"]["endpointPrivateAccess"] is True
    assert cluster["encryptionConfig"]["resources"] == ["secrets"]
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


def test_one_availability_zone_is_refused() -> None:
    with pytest.raises(KitError, match=r"^the aws platform needs two or more availability zones$"):
        _build(["ap-south-1a"])
