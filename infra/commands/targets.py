"""Commands that go through a deployment target: `render` and `deploy`.

The target is the spec's ``deployment.target`` unless ``--target`` names another; which
target does what is the target's business (``infra/targets/``), never this module's.
"""

from __future__ import annotations

from pathlib import Path

import typer

from infra.commands.common import TENANTS_OPTION, err, friendly_errors, read_env, specs_in
from infra.errors import KitError
from infra.spec import TenantSpec
from infra.targets import TARGET_NAMES, target_for

app = typer.Typer()

TARGET_OPTION = typer.Option(
    None, "--target", help=f"One of {', '.join(TARGET_NAMES)} (default: the spec's)."
)


def _tenant(specs: list[TenantSpec], code: str, folder: Path) -> TenantSpec:
    spec = next((s for s in specs if s.code == code), None)
    if spec is None:
        raise KitError(f"no tenant spec with code {code!r} in {folder}")
    return spec


@app.command()
@friendly_errors
def render(
    code: str = typer.Argument(..., help="The tenant to render."),
    target: str | None = TARGET_OPTION,
    out: Path = typer.Option(
        None, "--out", help="Folder to write into (default: rendered/<code>)."
    ),
    tenants: Path = TENANTS_OPTION,
) -> None:
    """Write the target's inputs for a tenant, with a manifest; no secret value in them.

    Secrets appear as references to where the target keeps them (a file under the kit's home,
    an Ansible Vault variable, a Kubernetes Secret, an AWS Secrets Manager name).
    """
    specs = specs_in(tenants)
    spec = _tenant(specs, code, tenants)
    chosen = target_for(target or spec.spec.deployment.target, read_env())
    folder = out or Path("rendered") / code
    folder.mkdir(parents=True, exist_ok=True)
    manifest = chosen.render(specs, [code], folder)
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
) -> None:
    """Deploy tenants with their target (the local target runs the whole folder, as `up`)."""
    specs = specs_in(tenants)
    chosen = {target or _tenant(specs, c, tenants).spec.deployment.target for c in codes}
    if len(chosen) != 1:
        raise KitError(f"these tenants deploy to {', '.join(sorted(chosen))}: one at a time")
    target_for(chosen.pop(), read_env()).deploy(
        specs, codes, lambda message: err.print(f"[bold]>[/] {message}")
    )
    typer.echo(f"deployed {', '.join(codes)}")
