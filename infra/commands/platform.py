"""`karmayogi platform …`: the shared platform stack a deployment's aws tenants run on."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from infra.commands.common import TENANTS_OPTION, err, friendly_errors, read_env, specs_in
from infra.targets.aws.deploy import PLATFORM_PROJECT, PREVIEW, run_platform

app = typer.Typer(
    help="The aws platform of a deployment: network, EKS, its operators and Keycloak.",
    no_args_is_help=True,
)

DEPLOYMENT_ARGUMENT = typer.Argument(
    ..., help="The deployment (a tenant spec's deployment.name, or its code when it has none)."
)


def _progress(message: str) -> None:
    err.print(f"[bold]>[/] {escape(message)}", highlight=False)


@app.command("deploy")
@friendly_errors
def platform_deploy(
    deployment: str = DEPLOYMENT_ARGUMENT,
    tenants: Path = TENANTS_OPTION,
    preview: bool = typer.Option(False, "--preview", help="Only preview the changes."),
) -> None:
    """Update (or preview) the deployment's platform stack through the Pulumi Automation API:
    the VPC across zones, EKS, the Load Balancer Controller and External Secrets Operator, and
    Keycloak on RDS (docs/aws.md). Prints the outputs its tenants' stacks read."""
    env = read_env()
    if preview:
        env[PREVIEW] = "1"
    outputs = run_platform(specs_in(tenants), deployment, env, _progress)
    if preview:
        typer.echo(f"previewed the platform of {deployment}")
        return
    typer.echo(json.dumps(outputs, indent=2, sort_keys=True))
    typer.echo(
        f"Set KARMAYOGI_AWS_PLATFORM_STACK=<organization>/{PLATFORM_PROJECT}/{deployment} "
        "for the tenants' stacks."
    )


@app.command("destroy")
@friendly_errors
def platform_destroy(
    deployment: str = DEPLOYMENT_ARGUMENT,
    tenants: Path = TENANTS_OPTION,
) -> None:
    """Destroy the deployment's platform stack (destroy its tenants' stacks first; Keycloak's
    database keeps its deletion protection, docs/aws.md)."""
    run_platform(specs_in(tenants), deployment, read_env(), _progress, destroy=True)
    typer.echo(f"destroyed the platform of {deployment}")
