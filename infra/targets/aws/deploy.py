"""``karmayogi deploy|destroy <code> --target aws``: one Pulumi stack per tenant, named after its
code, driven through the Automation API (docs/aws.md).

The Automation API drives the Pulumi CLI, which runs the AWS provider plugin; without either,
these commands stop with one line saying what to install, before anything is touched. Nothing
else in the kit needs Pulumi.

The stack's configuration comes from the spec (domain, size) and the environment:
``AWS_REGION`` and ``KARMAYOGI_AWS_PLATFORM_STACK``, the fully qualified platform stack whose
outputs (``privateSubnetIds``, ``databaseSecurityGroupIds``, ``oidcProviderArn``,
``oidcIssuer``, ``vpcCidr``, ``hostedZoneId``, ``kubeconfig``) the
tenant's resources are placed with. The portal's release gets the values the kubernetes target
renders for it (``karmayogi render <code> --target kubernetes``), made for EKS by
``infra.targets.aws.portal``.
"""

from __future__ import annotations

import functools
import importlib.util
import ipaddress
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from infra.errors import KitError
from infra.spec import TenantSpec
from infra.targets.base import Progress

PROJECT = "karmayogi-tenants"
PLATFORM_PROJECT = "karmayogi-platform"
PLATFORM_STACK = "KARMAYOGI_AWS_PLATFORM_STACK"
ENVIRONMENT = "KARMAYOGI_AWS_ENVIRONMENT"
ZONES = "KARMAYOGI_AWS_ZONES"
HOSTED_ZONE = "KARMAYOGI_AWS_HOSTED_ZONE_ID"
ADMIN_CIDRS = "KARMAYOGI_AWS_ADMIN_CIDRS"
PREVIEW = "KARMAYOGI_PULUMI_PREVIEW"
# What a tenant stack reads from its platform stack's outputs.
PLATFORM_OUTPUTS = (
    "privateSubnetIds",
    "databaseSecurityGroupIds",
    "oidcProviderArn",
    "oidcIssuer",
    "vpcCidr",
    "hostedZoneId",
    "kubeconfig",
)
_INSTALL = (
    "the aws target needs the Pulumi CLI and its AWS plugin: install Pulumi "
    "(https://www.pulumi.com/docs/install/), then run `pulumi plugin install resource aws`"
)


def require_pulumi(env: Mapping[str, str]) -> str:
    """The Pulumi CLI's path, or one line saying what is missing."""
    if any(
        importlib.util.find_spec(m) is None for m in ("pulumi", "pulumi_aws", "pulumi_kubernetes")
    ):
        raise KitError(
            "the aws target needs the pulumi, pulumi-aws and pulumi-kubernetes Python packages: "
            "pip install 'pulumi>=3.272,<4' 'pulumi-aws>=7.51,<8' 'pulumi-kubernetes>=4.34,<5'"
        )
    cli = shutil.which("pulumi", path=env.get("PATH"))
    if cli is None:
        raise KitError(_INSTALL)
    plugins = subprocess.run(
        [cli, "plugin", "ls", "--json"],
        capture_output=True,
        text=True,
        env=dict(env),
        check=False,
    )
    if plugins.returncode != 0 or '"name": "aws"' not in plugins.stdout.replace('":"', '": "'):
        raise KitError(_INSTALL)
    return cli


def _region(env: Mapping[str, str]) -> str:
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if not region:
        raise KitError("no AWS region: set AWS_REGION for the aws target")
    return region


def _config(spec: TenantSpec, env: Mapping[str, str]) -> dict[str, str]:
    region = _region(env)
    platform = env.get(PLATFORM_STACK)
    if not platform:
        raise KitError(f"no platform stack: set {PLATFORM_STACK} (org/project/stack)")
    return {
        "aws:region": region,
        "karmayogi:code": spec.code,
        "karmayogi:domain": spec.spec.domain,
        "karmayogi:size": spec.spec.deployment.size,
        "karmayogi:environment": env.get(ENVIRONMENT, "production"),
        "karmayogi:platformStack": platform,
    }


def portal_values(specs: Sequence[TenantSpec], code: str, env: Mapping[str, str]) -> dict[str, Any]:
    """The values the kubernetes target renders for ``code``'s portal release."""
    return rendered_values(specs, code, env)[0]


def rendered_values(
    specs: Sequence[TenantSpec], code: str, env: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the kubernetes target renders for ``code`` (``karmayogi render <code> --target
    kubernetes``): the values of its portal's release and of its deployment's Keycloak."""
    from infra.targets.kubernetes import KEYCLOAK_CHART, PORTAL_CHART, KubernetesTarget

    spec = next((s for s in specs if s.code == code), None)
    if spec is None:
        raise KitError(f"no tenant spec with code {code!r}")
    yaml = YAML(typ="safe", pure=True)
    with tempfile.TemporaryDirectory(prefix="karmayogi-aws-") as scratch:
        out = Path(scratch)
        KubernetesTarget(dict(env)).render(specs, [code], out)
        portal = out / "helm" / PORTAL_CHART / f"{code}.values.yaml"
        keycloak = out / "helm" / KEYCLOAK_CHART / f"{spec.deployment_name}.values.yaml"
        return yaml.load(portal.read_text("utf-8")), yaml.load(keycloak.read_text("utf-8"))


def program(values: dict[str, Any]) -> None:
    """The tenant stack's program: the only place that reads ``pulumi.Config``."""
    import pulumi
    import pulumi_kubernetes as k8s

    from infra.targets.aws.stack import TenantStack, TenantStackArgs

    config = pulumi.Config("karmayogi")
    platform = pulumi.StackReference(config.require("platformStack"))
    outputs: dict[str, Any] = {n: platform.require_output(n) for n in PLATFORM_OUTPUTS}

    code = config.require("code")
    cluster = k8s.Provider("cluster", kubeconfig=outputs["kubeconfig"])
    stack = TenantStack(
        code,
        TenantStackArgs(
            code=code,
            domain=config.require("domain"),
            environment=config.require("environment"),
            size=config.require("size"),
            subnet_ids=outputs["privateSubnetIds"],
            database_security_group_ids=outputs["databaseSecurityGroupIds"],
            oidc_provider_arn=outputs["oidcProviderArn"],
            oidc_issuer=outputs["oidcIssuer"],
            region=pulumi.Config("aws").require("region"),
            vpc_cidr=outputs["vpcCidr"],
            hosted_zone_id=outputs["hostedZoneId"],
            portal_values=values,
            kubernetes=cluster,
        ),
    )
    pulumi.export("bucket", stack.bucket.bucket)
    pulumi.export("databaseEndpoint", stack.database.endpoint)
    pulumi.export("roleArn", stack.role.arn)
    pulumi.export("keyArn", stack.key.arn)


def platform_config(deployment: str, env: Mapping[str, str]) -> dict[str, str]:
    """The platform stack's configuration: the deployment's name and the environment's
    settings, each missing one named in one line."""
    region = _region(env)
    zones = [z.strip() for z in env.get(ZONES, f"{region}a,{region}b").split(",") if z.strip()]
    if len(zones) < 2 or any(not z.startswith(region) for z in zones):
        raise KitError(f"{ZONES}: two or more availability zones of {region}, comma-separated")
    hosted_zone = env.get(HOSTED_ZONE)
    if not hosted_zone:
        raise KitError(
            f"no hosted zone: set {HOSTED_ZONE} to the Route 53 zone of the portals' names"
        )
    return {
        "aws:region": region,
        "karmayogi:deployment": deployment,
        "karmayogi:environment": env.get(ENVIRONMENT, "production"),
        "karmayogi:zones": ",".join(zones),
        "karmayogi:hostedZoneId": hosted_zone,
        "karmayogi:adminCidrs": ",".join(admin_cidrs(env)),
    }


def admin_cidrs(env: Mapping[str, str]) -> list[str]:
    """The ranges the cluster's API is reachable from besides the VPC (``private``: none)."""
    given = env.get(ADMIN_CIDRS, "").strip()
    if not given:
        raise KitError(
            f"no admin range: set {ADMIN_CIDRS} to the addresses `karmayogi` runs from "
            "(CIDRs, comma-separated), or to `private` when it runs inside the VPC"
        )
    if given == "private":
        return []
    ranges = []
    for part in (p.strip() for p in given.split(",") if p.strip()):
        try:
            network = ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise KitError(f"{ADMIN_CIDRS}: {part!r} is not an address range (CIDR)") from None
        if network.prefixlen == 0:
            raise KitError(f"{ADMIN_CIDRS}: {part} would open the cluster's API to every address")
        ranges.append(str(network))
    return ranges


def platform_program(keycloak_values: dict[str, Any]) -> None:
    """The platform stack's program: the network, EKS, its operators and the deployment's
    Keycloak; exports what every tenant stack of the deployment reads."""
    import pulumi

    from infra.targets.aws.platform import Platform, PlatformArgs

    config = pulumi.Config("karmayogi")
    platform = Platform(
        f"platform-{config.require('deployment')}",
        PlatformArgs(
            environment=config.require("environment"),
            availability_zones=config.require("zones").split(","),
            hosted_zone_id=config.require("hostedZoneId"),
            admin_cidrs=tuple(c for c in config.get("adminCidrs", "").split(",") if c),
            region=pulumi.Config("aws").require("region"),
            keycloak_values=keycloak_values,
        ),
    )
    for name, value in platform.outputs.items():
        pulumi.export(name, value)


def _drive(
    stack_name: str,
    project: str,
    program: Any,
    config: Mapping[str, str],
    env: Mapping[str, str],
    progress: Progress,
    destroy: bool,
) -> dict[str, Any]:
    """Preview, update or destroy a stack through the Automation API; its outputs."""
    from pulumi import automation

    stack = automation.create_or_select_stack(
        stack_name=stack_name,
        project_name=project,
        program=program,
        opts=automation.LocalWorkspaceOptions(env_vars=dict(env)),
    )
    for key, value in config.items():
        stack.set_config(key, automation.ConfigValue(value=value))
    if destroy:
        progress(f"destroying the stack {stack_name} of {project}")
        stack.destroy(on_output=progress)
        return {}
    if env.get(PREVIEW):
        progress(f"previewing the stack {stack_name} of {project}")
        stack.preview(on_output=progress)
        return {}
    progress(f"updating the stack {stack_name} of {project}")
    result = stack.up(on_output=progress)
    return {name: output.value for name, output in result.outputs.items()}


def run(
    specs: Sequence[TenantSpec],
    spec: TenantSpec,
    env: Mapping[str, str],
    progress: Progress,
    *,
    destroy: bool = False,
) -> dict[str, Any]:
    """Preview, update or destroy the tenant's stack; its outputs (none for destroy)."""
    require_pulumi(env)
    config = _config(spec, env)
    values = portal_values(specs, spec.code, env)
    program_of = functools.partial(program, values)
    outputs = _drive(spec.code, PROJECT, program_of, config, env, progress, destroy)
    if not destroy and not env.get(PREVIEW):
        _apply_realms(specs, spec.deployment_name, env, progress)
    return outputs


def run_platform(
    specs: Sequence[TenantSpec],
    deployment: str,
    env: Mapping[str, str],
    progress: Progress,
    *,
    destroy: bool = False,
) -> dict[str, Any]:
    """Preview, update or destroy the platform stack of ``deployment`` (named after it, in the
    project ``karmayogi-platform``); its outputs but the kubeconfig (none for destroy)."""
    members = [s for s in specs if s.deployment_name == deployment]
    if not members:
        known = ", ".join(sorted({s.deployment_name for s in specs}))
        raise KitError(f"no tenant spec of deployment {deployment!r} (deployments: {known})")
    require_pulumi(env)
    config = platform_config(deployment, env)
    keycloak = rendered_values(specs, members[0].code, env)[1]
    program_of = functools.partial(platform_program, keycloak)
    outputs = _drive(deployment, PLATFORM_PROJECT, program_of, config, env, progress, destroy)
    if not destroy and not env.get(PREVIEW):
        _apply_realms(specs, deployment, env, progress)
    return {name: value for name, value in outputs.items() if name != "kubeconfig"}


def _apply_realms(
    specs: Sequence[TenantSpec], deployment: str, env: Mapping[str, str], progress: Progress
) -> None:
    """The realm step, once a stack is up: Keycloak's realms take the tenants' secrets."""
    from infra.targets.aws.realms import apply_realms
    from infra.targets.aws.secrets import AwsSecretStore

    store = AwsSecretStore(environment=env.get(ENVIRONMENT, "production"))
    changes = apply_realms(specs, deployment, store, progress)
    for change in changes:
        progress(change)
    progress(f"Keycloak's realms: {len(changes)} change(s)")
