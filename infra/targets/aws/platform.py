"""The platform every AWS tenant stack stands on (docs/aws.md): network, cluster, Keycloak.

``Platform`` makes a VPC with a public and a private subnet in each availability zone given
(an internet gateway for the public ones, a NAT gateway per zone for the private ones), an EKS
cluster whose Kubernetes Secrets are encrypted with a KMS key of its own and whose API is
reached privately, a managed node group in the private subnets, the cluster's OIDC provider
(IRSA), and the security group the databases accept the nodes through. On the cluster, by
Helm: the AWS Load Balancer Controller (its IRSA role may make and change only load balancers
and security groups tagged with the cluster) and the External Secrets Operator (no AWS role:
each namespace's ``SecretStore`` reads with a role of that namespace's own). And the
deployment's Keycloak: an encrypted RDS PostgreSQL, its secrets in Secrets Manager brought in by
an ``ExternalSecret``, and the ``keycloak`` chart's release with the values the kubernetes
target renders. Its outputs are the names ``deploy.program`` reads by ``StackReference``.
"""

from __future__ import annotations

import copy
import ipaddress
import json
from dataclasses import dataclass
from typing import Any, cast

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.errors import KitError
from infra.targets.aws import database, edge, external_secrets, names
from infra.targets.aws.realms import KEYCLOAK_ACCOUNTS
from infra.targets.aws.seeding import RandomValues
from infra.targets.kubernetes import CHARTS, KEYCLOAK_CHART
from infra.targets.production import KEYCLOAK_BOOTSTRAP_SECRET, KEYCLOAK_DB_PASSWORD

# Charts of the cluster's operators, pinned (docs/aws.md says when to move them).
LOAD_BALANCER_CONTROLLER = (
    "https://aws.github.io/eks-charts",
    "aws-load-balancer-controller",
    "1.16.0",
)
EXTERNAL_SECRETS = ("https://charts.external-secrets.io", "external-secrets", "0.19.2")
CONTROLLER_ACCOUNT = ("kube-system", "aws-load-balancer-controller")
# Keycloak of the deployment this platform serves: its namespace and what reads its secrets.
KEYCLOAK_NAMESPACE = "karmayogi-keycloak"
KEYCLOAK_SECRETS_ACCOUNT = "keycloak-secrets"
# RDS's master user of Keycloak's database; Keycloak signs in as a user of its own, whose
# password does not rotate (the chart's databaseUser Job, infra/keycloak/database_user.py).
KEYCLOAK_DATABASE_ADMIN = "karmayogi_admin"
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
    hosted_zone_id: str = ""  # the Route 53 zone of the portals' and Keycloak's names
    # Where the operators run `karmayogi` from: the cluster's API is reachable from these
    # ranges (and from inside the VPC); none: from inside the VPC only.
    admin_cidrs: tuple[str, ...] = ()
    region: str = "ap-south-1"
    # The kubernetes target's values of the deployment's Keycloak release
    # (KubernetesTarget.keycloak_values); None: no Keycloak on this platform.
    keycloak_values: dict[str, Any] | None = None
    keycloak_database_class: str = "db.t4g.medium"
    keycloak_database_storage_gb: int = 20
    kubernetes: pulumi.ProviderResource | None = None  # the cluster, once it exists


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

        self._routes(base, args, tags)

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
                # The kit installs the cluster's Helm releases from the operator's machine, in
                # this same update: its address must reach the API.
                "endpoint_public_access": bool(args.admin_cidrs),
                **({"public_access_cidrs": list(args.admin_cidrs)} if args.admin_cidrs else {}),
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
        # The VPC CNI enforces NetworkPolicy only when told to (its network policy agent): the
        # portals' policies (charts/tenant-portal) are then what holds, not documentation.
        aws.eks.Addon(
            f"{base}-vpc-cni",
            cluster_name=self.cluster.name,
            addon_name="vpc-cni",
            configuration_values=json.dumps({"enableNetworkPolicy": "true"}),
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=tags,
            opts=child,
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
        self.kubeconfig = pulumi.Output.all(
            self.cluster.name,
            self.cluster.endpoint,
            self.cluster.certificate_authority.data,
        ).apply(lambda got: _kubeconfig(str(got[0]), str(got[1]), str(got[2]), args.region))
        self._operators(base, args, tags)
        if args.keycloak_values is not None:
            self._keycloak(base, args, args.keycloak_values, tags)
        self.outputs = {
            "privateSubnetIds": pulumi.Output.all(*private_ids),
            "databaseSecurityGroupIds": pulumi.Output.all(self.database_security_group.id),
            "oidcProviderArn": self.oidc_provider.arn,
            "oidcIssuer": issuer,
            "vpcCidr": self.vpc.cidr_block,
            "hostedZoneId": args.hosted_zone_id,
            "kubeconfig": pulumi.Output.secret(cast(Any, self.kubeconfig)),
        }
        self.register_outputs(self.outputs)

    def _routes(self, base: str, args: PlatformArgs, tags: dict[str, str]) -> None:
        """The public subnets out through an internet gateway; each private subnet out
        through the NAT gateway of its own zone (a zone lost takes only its own way out)."""
        child = pulumi.ResourceOptions(parent=self)
        gateway = aws.ec2.InternetGateway(
            f"{base}-igw", vpc_id=self.vpc.id, tags={**tags, "Name": f"{base}-igw"}, opts=child
        )
        public = aws.ec2.RouteTable(
            f"{base}-public",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": gateway.id}],
            tags={**tags, "Name": f"{base}-public"},
            opts=child,
        )
        self.nat_gateways: list[aws.ec2.NatGateway] = []
        for zone, outer, inner in zip(
            args.availability_zones, self.public_subnets, self.private_subnets, strict=True
        ):
            aws.ec2.RouteTableAssociation(
                f"{base}-public-{zone}", subnet_id=outer.id, route_table_id=public.id, opts=child
            )
            address = aws.ec2.Eip(
                f"{base}-nat-{zone}",
                domain="vpc",
                tags={**tags, "Name": f"{base}-nat-{zone}"},
                opts=child,
            )
            nat = aws.ec2.NatGateway(
                f"{base}-nat-{zone}",
                subnet_id=outer.id,
                allocation_id=address.id,
                tags={**tags, "Name": f"{base}-nat-{zone}"},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[gateway]),
            )
            self.nat_gateways.append(nat)
            private = aws.ec2.RouteTable(
                f"{base}-private-{zone}",
                vpc_id=self.vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
                tags={**tags, "Name": f"{base}-private-{zone}"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{base}-private-{zone}",
                subnet_id=inner.id,
                route_table_id=private.id,
                opts=child,
            )

    def _irsa_role(
        self,
        name: str,
        in_namespace: str,
        account: str,
        policy: pulumi.Input[str],
        tags: dict[str, str],
    ) -> aws.iam.Role:
        """A role only ``account`` of ``in_namespace`` may take, allowed ``policy`` alone."""
        child = pulumi.ResourceOptions(parent=self)
        trust = pulumi.Output.all(self.oidc_provider.arn, self.oidc_provider.url).apply(
            lambda got: json.dumps(
                names.web_identity_trust(str(got[0]), str(got[1]), in_namespace, account)
            )
        )
        role = aws.iam.Role(name, name=name, assume_role_policy=trust, tags=tags, opts=child)
        aws.iam.RolePolicy(f"{name}-access", role=role.id, policy=policy, opts=child)
        return role

    def _operators(self, base: str, args: PlatformArgs, tags: dict[str, str]) -> None:
        """The AWS Load Balancer Controller and the External Secrets Operator, by Helm."""
        policy = self.vpc.arn.apply(
            lambda arn: json.dumps(names.load_balancer_controller_policy(str(arn)), sort_keys=True)
        )
        self.controller_role = self._irsa_role(
            f"{base}-load-balancer-controller", *CONTROLLER_ACCOUNT, policy, tags
        )
        on_cluster = pulumi.ResourceOptions(
            parent=self, provider=args.kubernetes, depends_on=[self.cluster]
        )
        repository, chart, version = LOAD_BALANCER_CONTROLLER
        self.controller = k8s.helm.v3.Release(
            f"{base}-load-balancer-controller",
            name="aws-load-balancer-controller",
            namespace=CONTROLLER_ACCOUNT[0],
            chart=chart,
            version=version,
            repository_opts={"repo": repository},
            values={
                "clusterName": self.cluster.name,
                "region": args.region,
                "vpcId": self.vpc.id,
                "serviceAccount": {
                    "create": True,
                    "name": CONTROLLER_ACCOUNT[1],
                    "annotations": {"eks.amazonaws.com/role-arn": self.controller_role.arn},
                },
            },
            atomic=True,
            opts=on_cluster,
        )
        repository, chart, version = EXTERNAL_SECRETS
        self.external_secrets = k8s.helm.v3.Release(
            f"{base}-external-secrets",
            name="external-secrets",
            namespace="external-secrets",
            create_namespace=True,
            chart=chart,
            version=version,
            repository_opts={"repo": repository},
            # No AWS role of its own: each SecretStore reads with its namespace's role.
            values={"installCRDs": True},
            atomic=True,
            opts=on_cluster,
        )

    def _keycloak(
        self, base: str, args: PlatformArgs, rendered: dict[str, Any], tags: dict[str, str]
    ) -> None:
        """The deployment's Keycloak: its database, secrets, certificate, name and release."""
        child = pulumi.ResourceOptions(parent=self)
        deployment = str(rendered["deployment"])
        self.data_key = aws.kms.Key(
            f"{base}-keycloak-key",
            description=f"Karmayogi platform {args.environment}: Keycloak's database and secrets",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=tags,
            opts=child,
        )
        subnets = aws.rds.SubnetGroup(
            f"{base}-keycloak-db-subnets",
            name=f"{base}-keycloak-db",
            subnet_ids=[s.id for s in self.private_subnets],
            tags=tags,
            opts=child,
        )
        identifier = f"{base}-keycloak-db"
        self.keycloak_database = database.postgres(
            identifier,
            key=self.data_key,
            subnet_group=subnets,
            security_group_ids=[self.database_security_group.id],
            instance_class=args.keycloak_database_class,
            storage_gb=args.keycloak_database_storage_gb,
            multi_az=True,
            db_name=str(rendered["database"]["name"]),
            username=KEYCLOAK_DATABASE_ADMIN,
            tags=tags,
            opts=child,
        )
        kept = {
            name: aws.secretsmanager.Secret(
                f"{base}-keycloak-{name.replace('_', '-')}",
                name=names.secret_id(deployment, name),
                kms_key_id=self.data_key.arn,
                recovery_window_in_days=30,
                tags=tags,
                opts=child,
            )
            for name in (KEYCLOAK_BOOTSTRAP_SECRET, KEYCLOAK_DB_PASSWORD, KEYCLOAK_ACCOUNTS)
        }
        # Random values before Keycloak first starts: its temporary bootstrap client's secret
        # (the kit's realm step, infra/targets/aws/realms.py, replaces that client with its own
        # accounts, kept in the third secret, which nothing on the cluster reads) and the
        # password of its own database user.
        on_cluster_read = (KEYCLOAK_BOOTSTRAP_SECRET, KEYCLOAK_DB_PASSWORD)
        seeded = RandomValues(
            f"{base}-keycloak-secret-values",
            secret_ids=[kept[name].name for name in on_cluster_read],
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[kept[name] for name in on_cluster_read]
            ),
        )
        master = self.keycloak_database.master_user_secrets[0].secret_arn
        readable = pulumi.Output.all(
            self.data_key.arn, master, *(kept[name].arn for name in on_cluster_read)
        ).apply(
            lambda got: json.dumps(
                names.secrets_reader_policy([str(a) for a in got[1:]], str(got[0])),
                sort_keys=True,
            )
        )
        reader = self._irsa_role(
            f"{base}-keycloak-secrets", KEYCLOAK_NAMESPACE, KEYCLOAK_SECRETS_ACCOUNT, readable, tags
        )
        login = str(rendered["hostname"]).removeprefix("https://")
        _, certificate_arn = edge.certificate(
            f"{base}-keycloak", login, args.hosted_zone_id, tags, self
        )

        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.kubernetes)
        namespace = edge.namespace(
            KEYCLOAK_NAMESPACE, f"{base}-keycloak-namespace", tags, on_cluster
        )
        inside = pulumi.ResourceOptions(
            parent=self,
            provider=args.kubernetes,
            depends_on=[namespace, self.external_secrets],
        )
        account = k8s.core.v1.ServiceAccount(
            f"{base}-keycloak-secrets",
            metadata={
                "name": KEYCLOAK_SECRETS_ACCOUNT,
                "namespace": KEYCLOAK_NAMESPACE,
                "annotations": {"eks.amazonaws.com/role-arn": reader.arn},
            },
            automount_service_account_token=False,
            opts=inside,
        )
        store = external_secrets.resource(
            f"{base}-keycloak-secret-store",
            "SecretStore",
            external_secrets.secret_store(
                KEYCLOAK_NAMESPACE, KEYCLOAK_SECRETS_ACCOUNT, args.region
            ),
            pulumi.ResourceOptions(
                parent=self, provider=args.kubernetes, depends_on=[account, self.external_secrets]
            ),
        )
        keys = rendered["secretKeys"]
        admin = _DATABASE_USER["adminSecretKeys"]
        data = [
            {
                "secretKey": keys["databasePassword"],
                "remoteRef": {"key": kept[KEYCLOAK_DB_PASSWORD].name},
            },
            # RDS keeps its master user's name and password, rotated, in its own secret: read by
            # the hook Job that makes Keycloak's user, never by Keycloak.
            {"secretKey": admin["username"], "remoteRef": {"key": master, "property": "username"}},
            {"secretKey": admin["password"], "remoteRef": {"key": master, "property": "password"}},
            {
                "secretKey": keys["bootstrapClientSecret"],
                "remoteRef": {"key": kept[KEYCLOAK_BOOTSTRAP_SECRET].name},
            },
        ]
        secret = external_secrets.resource(
            f"{base}-keycloak-external-secret",
            "ExternalSecret",
            external_secrets.external_secret(rendered["existingSecret"], KEYCLOAK_NAMESPACE, data),
            pulumi.ResourceOptions(
                parent=self, provider=args.kubernetes, depends_on=[store, seeded]
            ),
        )
        self.keycloak_values = pulumi.Output.all(
            self.keycloak_database.address, certificate_arn, self.vpc.cidr_block
        ).apply(lambda got: aws_keycloak_values(rendered, str(got[0]), str(got[1]), str(got[2])))
        self.keycloak = k8s.helm.v3.Release(
            f"{base}-keycloak",
            name=f"keycloak-{deployment}",
            chart=str(CHARTS / KEYCLOAK_CHART),
            namespace=KEYCLOAK_NAMESPACE,
            values=self.keycloak_values,
            atomic=True,
            timeout=900,
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=args.kubernetes,
                depends_on=[secret, self.controller, self.keycloak_database],
            ),
        )
        self.keycloak_record = edge.record_to_ingress(
            f"{base}-keycloak",
            login,
            args.hosted_zone_id,
            f"{KEYCLOAK_NAMESPACE}/keycloak-{deployment}",
            self.keycloak,
            args.kubernetes,
            self,
        )


def aws_keycloak_values(
    rendered: dict[str, Any], database_host: str, certificate_arn: str, vpc_cidr: str
) -> dict[str, Any]:
    """The kubernetes target's Keycloak values, made for EKS: its RDS database, an ALB with
    the certificate, and X-Forwarded-* trusted from the VPC (the ALB's addresses)."""
    out = copy.deepcopy(rendered)
    out["database"] = {**out["database"], "host": database_host}
    out["ingress"] = {
        **out["ingress"],
        "className": "alb",
        "annotations": edge.alb_annotations(certificate_arn),
    }
    out["proxyTrustedAddresses"] = [vpc_cidr]
    # The kit applies the realms itself after each deploy (infra/targets/aws/realms.py).
    out["realms"] = {**out["realms"], "enabled": False}
    out["databaseUser"] = {**_DATABASE_USER, "enabled": True, "image": out["realms"]["image"]}
    return out


# Keycloak's own database user, made by RDS's master user (charts/keycloak, databaseUser).
_DATABASE_USER = {
    "adminSecretKeys": {
        "username": "keycloak-db-admin-username",
        "password": "keycloak-db-admin-password",
    }
}


def _kubeconfig(name: str, endpoint: str, authority: str, region: str) -> str:
    """A kubeconfig reaching the cluster with the caller's AWS credentials (aws eks get-token)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": name,
                    "cluster": {"server": endpoint, "certificate-authority-data": authority},
                }
            ],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
            "users": [
                {
                    "name": name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": [
                                "eks",
                                "get-token",
                                "--cluster-name",
                                name,
                                "--region",
                                region,
                            ],
                        }
                    },
                }
            ],
        }
    )
