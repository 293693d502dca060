"""The platform every AWS tenant stack stands on (docs/aws.md): network, cluster, OIDC.

``Platform`` makes a VPC with a public and a private subnet in each availability zone given,
an EKS cluster whose Kubernetes Secrets are encrypted with a KMS key of its own and whose API is
reached privately, a managed node group in the private subnets, the cluster's OIDC provider
(IRSA), and the security group the tenants' databases accept the nodes through. Its outputs
are the names ``deploy.program`` reads by ``StackReference``. The Helm releases (AWS Load
Balancer Controller, External Secrets Operator, Keycloak) are not made here yet.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.errors import KitError

NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
)


@dataclass
class PlatformArgs:
    environment: str
    availability_zones: list[str]  # two or more
    cidr: str = "10.40.0.0/16"
    kubernetes_version: str = "1.33"
    node_instance_type: str = "m7g.large"
    nodes_min: int = 2
    nodes_max: int = 6


def _role(name: str, service: str, parent: pulumi.Resource, tags: dict[str, str]) -> aws.iam.Role:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }
    return aws.iam.Role(
        name,
        name=name,
        assume_role_policy=json.dumps(trust),
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )


class Platform(pulumi.ComponentResource):
    """The shared network and cluster, named ``karmayogi-platform-<environment>-…``."""

    def __init__(
        self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("karmayogi:aws:Platform", name, None, opts)
        if len(set(args.availability_zones)) < 2:
            raise KitError("the aws platform needs two or more availability zones")
        base = f"karmayogi-platform-{args.environment}"
        tags = {"environment": args.environment, "managed-by": "karmayogi"}
        child = pulumi.ResourceOptions(parent=self)
        halves = list(ipaddress.ip_network(args.cidr).subnets(prefixlen_diff=4))

        self.vpc = aws.ec2.Vpc(
            f"{base}-vpc",
            cidr_block=args.cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**tags, "Name": f"{base}-vpc"},
            opts=child,
        )
        self.public_subnets: list[aws.ec2.Subnet] = []
        self.private_subnets: list[aws.ec2.Subnet] = []
        for i, zone in enumerate(args.availability_zones):
            for kind, subnets, offset, role in (
                ("public", self.public_subnets, 0, "kubernetes.io/role/elb"),
                ("private", self.private_subnets, 8, "kubernetes.io/role/internal-elb"),
            ):
                subnets.append(
                    aws.ec2.Subnet(
                        f"{base}-{kind}-{zone}",
                        vpc_id=self.vpc.id,
                        availability_zone=zone,
                        cidr_block=str(halves[offset + i]),
                        map_public_ip_on_launch=False,
                        tags={**tags, "Name": f"{base}-{kind}-{zone}", role: "1"},
                        opts=child,
                    )
                )

        self.secrets_key = aws.kms.Key(
            f"{base}-eks-secrets",
            description=f"Karmayogi platform {args.environment}: EKS Secrets",
            enable_key_rotation=True,
            tags=tags,
            opts=child,
        )
        cluster_role = _role(f"{base}-eks", "eks.amazonaws.com", self, tags)
        cluster_policy = aws.iam.RolePolicyAttachment(
            f"{base}-eks-policy",
            role=cluster_role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
            opts=child,
        )
        private_ids = [s.id for s in self.private_subnets]
        self.cluster = aws.eks.Cluster(
            f"{base}-eks",
            name=f"{base}-eks",
            version=args.kubernetes_version,
            role_arn=cluster_role.arn,
            vpc_config={
                "subnet_ids": private_ids,
                "endpoint_private_access": True,
                "endpoint_public_access": False,
            },
            encryption_config={
                "resources": ["secrets"],
                "provider": {"key_arn": self.secrets_key.arn},
            },
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster_policy]),
        )
        node_role = _role(f"{base}-nodes", "ec2.amazonaws.com", self, tags)
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{base}-nodes-{policy.rsplit('/', 1)[-1]}",
                role=node_role.name,
                policy_arn=policy,
                opts=child,
            )
            for policy in NODE_POLICIES
        ]
        aws.eks.NodeGroup(
            f"{base}-nodes",
            cluster_name=self.cluster.name,
            node_role_arn=node_role.arn,
            subnet_ids=private_ids,
            instance_types=[args.node_instance_type],
            ami_type="AL2023_ARM_64_STANDARD",
            scaling_config={
                "min_size": args.nodes_min,
                "desired_size": args.nodes_min,
                "max_size": args.nodes_max,
            },
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=attachments),
        )
        issuer = self.cluster.identities[0].oidcs[0].issuer
        self.oidc_provider = aws.iam.OpenIdConnectProvider(
            f"{base}-oidc",
            url=issuer,
            client_id_lists=["sts.amazonaws.com"],
            tags=tags,
            opts=child,
        )
        self.database_security_group = aws.ec2.SecurityGroup(
            f"{base}-databases",
            vpc_id=self.vpc.id,
            description="PostgreSQL of the tenants, from the cluster only",
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": 5432,
                    "to_port": 5432,
                    "security_groups": [self.cluster.vpc_config.cluster_security_group_id],
                }
            ],
            tags=tags,
            opts=child,
        )
        self.outputs = {
            "privateSubnetIds": pulumi.Output.all(*private_ids),
            "databaseSecurityGroupIds": pulumi.Output.all(self.database_security_group.id),
            "oidcProviderArn": self.oidc_provider.arn,
            "oidcIssuer": issuer,
        }
        self.register_outputs(self.outputs)
