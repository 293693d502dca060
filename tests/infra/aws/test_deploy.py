"""`karmayogi deploy|destroy <code> --target aws` on a machine without the Pulumi CLI: one line
saying what to install, before anything is touched (the engine cannot run here, docs/aws.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.cli import app
from infra.commands.common import specs_in
from infra.errors import KitError
from infra.targets.aws.deploy import _config, platform_config

TENANTS = Path(__file__).resolve().parents[3] / "tenants"
INSTALL = (
    "error: the aws target needs the Pulumi CLI and its AWS plugin: install Pulumi "
    "(https://www.pulumi.com/docs/install/), then run `pulumi plugin install resource aws`\n"
)


@pytest.mark.parametrize(
    "command",
    [
        ["deploy", "bihar", "--target", "aws", "--preview"],
        ["deploy", "bihar", "--target", "aws"],
        ["destroy", "bihar", "--target", "aws"],
        ["platform", "deploy", "bihar", "--preview"],
        ["platform", "deploy", "bihar"],
        ["platform", "destroy", "bihar"],
    ],
)
def test_without_the_pulumi_cli_the_command_names_what_to_install(
    command: list[str], tmp_path: Path
) -> None:
    # A PATH with no pulumi on it: the machine's own state, made explicit.
    result = CliRunner().invoke(
        app, [*command, "--tenants", str(TENANTS)], env={"PATH": str(tmp_path)}
    )
    assert result.exit_code == 1
    assert result.stderr == INSTALL
    assert result.stdout == ""


def test_preview_is_refused_for_other_targets() -> None:
    result = CliRunner().invoke(
        app, ["deploy", "bihar", "--target", "vm", "--preview", "--tenants", str(TENANTS)]
    )
    assert result.exit_code == 1
    assert result.stderr == "error: --preview is for the aws target\n"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"KARMAYOGI_AWS_PLATFORM_STACK": "org/karmayogi-platform/production"},
            "no AWS region: set AWS_REGION for the aws target",
        ),
        (
            {"AWS_REGION": "ap-south-1"},
            "no platform stack: set KARMAYOGI_AWS_PLATFORM_STACK (org/project/stack)",
        ),
    ],
    ids=["no-region", "no-platform-stack"],
)
def test_the_stacks_configuration_missing_a_setting_is_one_clear_line(
    env: dict[str, str], message: str
) -> None:
    (spec,) = [s for s in specs_in(TENANTS) if s.code == "bihar"]
    with pytest.raises(KitError) as raised:
        _config(spec, env)
    assert str(raised.value) == message


def test_the_stacks_configuration_comes_from_the_spec() -> None:
    (spec,) = [s for s in specs_in(TENANTS) if s.code == "bihar"]
    env = {"AWS_REGION": "ap-south-1", "KARMAYOGI_AWS_PLATFORM_STACK": "org/p/production"}
    assert _config(spec, env) == {
        "aws:region": "ap-south-1",
        "karmayogi:code": "bihar",
        "karmayogi:domain": "learn.bihar.example",
        "karmayogi:size": spec.spec.deployment.size,
        "karmayogi:environment": "production",
        "karmayogi:platformStack": "org/p/production",
    }


# --- the platform stack ------------------------------------------------------------------------

PLATFORM_ENV = {
    "AWS_REGION": "ap-south-1",
    "KARMAYOGI_AWS_HOSTED_ZONE_ID": "Z0123456789",
    "KARMAYOGI_AWS_ADMIN_CIDRS": "203.0.113.0/24, 198.51.100.7/32",
}


def test_the_platforms_configuration_comes_from_the_environment() -> None:
    assert platform_config("bihar", PLATFORM_ENV) == {
        "aws:region": "ap-south-1",
        "karmayogi:deployment": "bihar",
        "karmayogi:environment": "production",
        "karmayogi:zones": "ap-south-1a,ap-south-1b",
        "karmayogi:hostedZoneId": "Z0123456789",
        "karmayogi:adminCidrs": "203.0.113.0/24,198.51.100.7/32",
    }
    # Run from inside the VPC: the API has no public endpoint at all.
    inside = PLATFORM_ENV | {"KARMAYOGI_AWS_ADMIN_CIDRS": "private"}
    assert platform_config("bihar", inside)["karmayogi:adminCidrs"] == ""
    three = PLATFORM_ENV | {"KARMAYOGI_AWS_ZONES": "ap-south-1a, ap-south-1b,ap-south-1c"}
    assert (
        platform_config("bihar", three)["karmayogi:zones"] == "ap-south-1a,ap-south-1b,ap-south-1c"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"AWS_REGION": ""}, "no AWS region: set AWS_REGION for the aws target"),
        (
            {"KARMAYOGI_AWS_ZONES": "ap-south-1a"},
            "KARMAYOGI_AWS_ZONES: two or more availability zones of ap-south-1, comma-separated",
        ),
        (
            {"KARMAYOGI_AWS_ZONES": "ap-south-1a,us-east-1a"},
            "KARMAYOGI_AWS_ZONES: two or more availability zones of ap-south-1, comma-separated",
        ),
        (
            {"KARMAYOGI_AWS_HOSTED_ZONE_ID": ""},
            "no hosted zone: set KARMAYOGI_AWS_HOSTED_ZONE_ID to the Route 53 zone of the "
            "portals' names",
        ),
        (
            {"KARMAYOGI_AWS_ADMIN_CIDRS": ""},
            "no admin range: set KARMAYOGI_AWS_ADMIN_CIDRS to the addresses `karmayogi` runs "
            "from (CIDRs, comma-separated), or to `private` when it runs inside the VPC",
        ),
        (
            {"KARMAYOGI_AWS_ADMIN_CIDRS": "203.0.113.0/24,the office"},
            "KARMAYOGI_AWS_ADMIN_CIDRS: 'the office' is not an address range (CIDR)",
        ),
        (
            {"KARMAYOGI_AWS_ADMIN_CIDRS": "0.0.0.0/0"},
            "KARMAYOGI_AWS_ADMIN_CIDRS: 0.0.0.0/0 would open the cluster's API to every address",
        ),
    ],
    ids=[
        "no-region",
        "one-zone",
        "other-region",
        "no-hosted-zone",
        "no-admin-range",
        "bad-admin-range",
        "everyone",
    ],
)
def test_the_platforms_configuration_missing_a_setting_is_one_clear_line(
    change: dict[str, str], message: str
) -> None:
    with pytest.raises(KitError) as raised:
        platform_config("bihar", PLATFORM_ENV | change)
    assert str(raised.value) == message


def test_an_unknown_deployment_is_named_before_anything_else() -> None:
    result = CliRunner().invoke(
        app, ["platform", "deploy", "bharat", "--tenants", str(TENANTS)], env=PLATFORM_ENV
    )
    assert result.exit_code == 1
    assert result.stderr == (
        "error: no tenant spec of deployment 'bharat' (deployments: bihar, karmayogi-bharat, "
        "mauritius, rajasthan)\n"
    )


@pytest.mark.parametrize(
    ("env", "destroy", "realms"),
    [({}, False, True), ({"KARMAYOGI_PULUMI_PREVIEW": "1"}, False, False), ({}, True, False)],
    ids=["up", "preview", "destroy"],
)
def test_keycloaks_realms_are_applied_once_a_stack_is_up_and_only_then(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], destroy: bool, realms: bool
) -> None:
    """The engine cannot run here: its place is taken, and the test checks what follows it.
    (The realm step itself runs against the production Keycloak in tests/production.)"""
    from infra.targets.aws import deploy
    from infra.targets.aws import realms as realm_step

    applied: list[str] = []

    def apply_realms(specs: object, deployment: str, *_: object, **__: object) -> list[str]:
        applied.append(deployment)
        return []

    monkeypatch.setattr(deploy, "require_pulumi", lambda env: "pulumi")
    monkeypatch.setattr(deploy, "_drive", lambda *args: {"bucket": "b", "kubeconfig": "{}"})
    monkeypatch.setattr(realm_step, "apply_realms", apply_realms)
    specs = specs_in(TENANTS)
    (bihar,) = [s for s in specs if s.code == "bihar"]
    env = {"AWS_REGION": "ap-south-1", "KARMAYOGI_AWS_PLATFORM_STACK": "o/p/s", **env}
    deploy.run(specs, bihar, env, lambda _: None, destroy=destroy)
    platform_env = {
        **env,
        "KARMAYOGI_AWS_HOSTED_ZONE_ID": "Z1",
        "KARMAYOGI_AWS_ADMIN_CIDRS": "private",
    }
    assert deploy.run_platform(specs, "bihar", platform_env, lambda _: None, destroy=destroy) == (
        {"bucket": "b"}
    )
    assert applied == (["bihar", "bihar"] if realms else [])
