"""`karmayogi tenant …`: onboard and offboard tenants."""

from __future__ import annotations

from pathlib import Path

import typer

from infra.commands.common import (
    TENANTS_OPTION,
    err,
    friendly_errors,
    read_env,
)
from infra.errors import KitError

app = typer.Typer(help="Onboard and offboard tenants.", no_args_is_help=True)


@app.command("new")
@friendly_errors
def tenant_new(
    tenants: Path = TENANTS_OPTION,
    code: str = typer.Option(None, "--code", help="Slug for realm and portal, e.g. odisha."),
    name: str = typer.Option(None, "--name", help="The government's name, e.g. Odisha."),
    kind: str = typer.Option(None, "--type", help="state or country."),
    languages: str = typer.Option(None, "--languages", help="BCP 47 tags, first is default."),
    domain: str = typer.Option(None, "--domain", help="The portal's hostname."),
    primary: str = typer.Option(None, "--primary", help="Main colour, #RRGGBB."),
    accent: str = typer.Option(None, "--accent", help="Second colour, #RRGGBB."),
    logo: Path = typer.Option(None, "--logo", help="SVG or PNG logo (default: initials)."),
    publish: bool = typer.Option(
        None, "--publish/--no-publish", help="Offer its courses to the hub (default: states do)."
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Ask nothing: --code is required, the rest has defaults."
    ),
) -> None:
    """Scaffold a valid tenant spec from flags or questions.

    `karmayogi up` then brings the tenant online without restarting the others.
    """
    from infra.targets.local.lifecycle import NewTenant, scaffold_tenant

    def ask(value: str | None, question: str, default: str | None = None) -> str:
        if value:
            return value
        if yes:
            if default is not None:
                return default
            raise KitError("tenant new: --code is required with --yes")
        return str(typer.prompt(question, default=default))

    code = ask(code, "Code (a slug such as odisha)")
    name = ask(name, "Name of the government", code.replace("-", " ").title())
    kind = ask(kind, "Type (state or country)", "state")
    if kind not in ("state", "country"):
        raise KitError(f"tenant new: --type must be state or country, not {kind!r}")
    languages = ask(languages, "Languages (BCP 47, comma-separated, first is default)", "en")
    domain = ask(domain, "Domain of the portal", f"learn.{code}.example")
    primary = ask(primary, "Primary colour", "#1f4e79")
    accent = ask(accent, "Accent colour", "#c05600")
    new = NewTenant(
        code=code,
        name=name,
        type=kind,
        languages=tuple(t.strip() for t in languages.split(",") if t.strip()),
        domain=domain,
        primary=primary,
        accent=accent,
        logo=logo,
        publish=publish,
    )
    path = scaffold_tenant(new, tenants)
    folder = "" if tenants == Path("tenants") else f" --tenants {tenants}"
    typer.echo(f"Wrote {path}; `karmayogi up{folder}` brings {code} online.")


@app.command("remove")
@friendly_errors
def tenant_remove(
    code: str = typer.Argument(..., help="The tenant to offboard."),
    tenants: Path = TENANTS_OPTION,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Archive a tenant, then delete it.

    The archive holds its portal's data, its realm and its users' profiles; then its portal
    is stopped, its realm and hub clients deleted, its spec taken out. Others are untouched.
    """
    from infra.targets.local.runtime import local_remove_tenant

    if not yes:
        typer.confirm(
            f"Archive, then delete tenant {code} (its portal, realm and users)?", abort=True
        )
    archive = local_remove_tenant(
        code, tenants, read_env(), progress=lambda message: err.print(f"[bold]>[/] {message}")
    )
    typer.echo(f"{code} removed; archive: {archive.path}")
