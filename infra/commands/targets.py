"""Commands that go through a deployment target: `render` and `deploy`.

The target is the spec's ``deployment.target`` unless ``--target`` names another; which
target does what is the target's business (``infra/targets/``), never this module's.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from infra.commands.common import TENANTS_OPTION, err, friendly_errors, read_env, specs_in
from infra.errors import KitError
from infra.spec import TenantSpec
from infra.targets import TARGET_NAMES, target_for
from infra.targets.aws import AwsTarget
from infra.targets.aws.audit import audit as audit_aws
from infra.targets.aws.deploy import PREVIEW as PULUMI_PREVIEW

app = typer.Typer()

TARGET_OPTION = typer.Option(
    None, "--target", help=f"One of {', '.join(TARGET_NAMES)} (default: the spec's)."
)


VAULT_OPTION = typer.Option(
    None,
    "--vault-password-file",
    help="The vault password file of targets that keep secrets in Ansible Vault (vm).",
)
HOST_OPTION = typer.Option(
    None, "--host", help="The VM that runs the deployment (vm, at the first render)."
)
DATABASE_HOST_OPTION = typer.Option(
    None, "--database-host", help="A host of its own for PostgreSQL (vm, at the first render)."
)


def _target_env(
    vault_password_file: Path | None, host: str | None, database_host: str | None
) -> dict[str, str]:
    """The environment, with the options a target reads from it (only it knows which)."""
    env = read_env()
    given = {
        "ANSIBLE_VAULT_PASSWORD_FILE": str(vault_password_file) if vault_password_file else None,
        "KARMAYOGI_VM_HOST": host,
        "KARMAYOGI_VM_DATABASE_HOST": database_host,
    }
    return env | {name: value for name, value in given.items() if value}


def _tenant(specs: list[TenantSpec], code: str, folder: Path) -> TenantSpec:
    spec = next((s for s in specs if s.code == code), None)
    if spec is None:
        raise KitError(f"no tenant spec with code {code!r} in {folder}")
    return spec


@app.command()
@friendly_errors
def render(
    codes: list[str] = typer.Argument(..., help="The tenants to render (one deployment)."),
    target: str | None = TARGET_OPTION,
    out: Path = typer.Option(
        None, "--out", help="Folder to write into (default: rendered/<code> of the first)."
    ),
    tenants: Path = TENANTS_OPTION,
    vault_password_file: Path | None = VAULT_OPTION,
    host: str | None = HOST_OPTION,
    database_host: str | None = DATABASE_HOST_OPTION,
) -> None:
    """Write the target's inputs for a tenant, with a manifest; no secret value in them.

    Secrets appear as references to where the target keeps them (a file under the kit's home,
    an Ansible Vault variable, a Kubernetes Secret, an AWS Secrets Manager name).
    """
    specs = specs_in(tenants)
    named = {target or _tenant(specs, code, tenants).spec.deployment.target for code in codes}
    if len(named) != 1:
        raise KitError(f"these tenants render for {', '.join(sorted(named))}: one at a time")
    chosen = target_for(named.pop(), _target_env(vault_password_file, host, database_host))
    folder = out or Path("rendered") / codes[0]
    folder.mkdir(parents=True, exist_ok=True)
    manifest = chosen.render(specs, codes, folder)
    for artefact in manifest.files:
        typer.echo(f"wrote {folder / artefact.path}")
    for secret in manifest.secrets:
        typer.echo(f"secret {secret.name}: kept at {secret.reference}")
    typer.echo(f"manifest: {folder / 'manifest.json'}")


@app.command()
@friendly_errors
def deploy(
    codes: list[str] = typer.Argument(..., help="The tenants to deploy."),
    target: str | None = TARGET_OPTION,
    tenants: Path = TENANTS_OPTION,
    out: Path | None = typer.Option(
        None, "--out", help="Folder the vm target renders into before it runs the play."
    ),
    vault_password_file: Path | None = VAULT_OPTION,
    host: str | None = HOST_OPTION,
    database_host: str | None = DATABASE_HOST_OPTION,
    preview: bool = typer.Option(
        False, "--preview", help="Only preview the changes (aws: a Pulumi preview)."
    ),
) -> None:
    """Deploy tenants with their target (the local target runs the whole folder, as `up`)."""
    specs = specs_in(tenants)
    chosen = {target or _tenant(specs, c, tenants).spec.deployment.target for c in codes}
    if len(chosen) != 1:
        raise KitError(f"these tenants deploy to {', '.join(sorted(chosen))}: one at a time")
    env = _target_env(vault_password_file, host, database_host)
    if out is not None:
        env["KARMAYOGI_RENDER_DIR"] = str(out)
    if preview:
        if chosen != {"aws"}:
            raise KitError("--preview is for the aws target")
        env[PULUMI_PREVIEW] = "1"
    target_for(chosen.pop(), env).deploy(
        specs, codes, lambda message: err.print(f"[bold]>[/] {escape(message)}", highlight=False)
    )
    typer.echo(f"deployed {', '.join(codes)}")


@app.command()
@friendly_errors
def audit(
    code: str = typer.Argument(..., help="The tenant to audit."),
    target: str | None = TARGET_OPTION,
    environment: str = typer.Option(
        "production", "--environment", help="The environment its stack was deployed as (aws)."
    ),
    tenants: Path = TENANTS_OPTION,
) -> None:
    """Check a deployed tenant's security posture; exits 1 when anything falls short.

    The aws target reads, with boto3, the bucket's encryption, public access block and
    versioning, the database's encryption, deletion protection and backups, the secrets and
    their rotation, and the portal role's policy (docs/aws.md).
    """
    chosen = target or _tenant(specs_in(tenants), code, tenants).spec.deployment.target
    if chosen != "aws":
        raise KitError(f"audit checks tenants of the aws target, not {chosen}")
    findings = audit_aws(code, environment)
    for finding in findings:
        typer.echo(f"finding: {finding}")
    if findings:
        raise typer.Exit(1)
    typer.echo(f"{code}: no findings")


@app.command()
@friendly_errors
def destroy(
    codes: list[str] = typer.Argument(..., help="The tenants whose stacks to destroy."),
    target: str | None = TARGET_OPTION,
    tenants: Path = TENANTS_OPTION,
) -> None:
    """Destroy tenants' stacks (aws: `pulumi destroy` of each tenant's stack)."""
    specs = specs_in(tenants)
    chosen = {target or _tenant(specs, c, tenants).spec.deployment.target for c in codes}
    if chosen != {"aws"}:
        raise KitError("destroy is for the aws target (others: `karmayogi tenant remove`)")
    AwsTarget(read_env()).destroy(
        specs, codes, lambda message: err.print(f"[bold]>[/] {escape(message)}", highlight=False)
    )
    typer.echo(f"destroyed {', '.join(codes)}")
