"""`karmayogi identity …`: realms, clients and themes in Keycloak."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from infra.commands.common import (
    CODES_ARGUMENT,
    JSON_OPTION,
    TENANTS_OPTION,
    err,
    friendly_errors,
    read_env,
    specs_in,
)

app = typer.Typer(help="Realms, clients and themes in Keycloak.", no_args_is_help=True)


def _print_changes(changes: Sequence[Any], as_json: bool) -> None:
    from identity.reconciler import plan_as_json

    if as_json:
        typer.echo(json.dumps(plan_as_json(changes), indent=2, default=str))
    elif not changes:
        typer.echo("No changes: Keycloak matches the specs.")
    else:
        for change in changes:
            typer.echo(change.describe())
        typer.echo(f"{len(changes)} change(s).")


@app.command("plan")
@friendly_errors
def identity_plan(
    codes: list[str] = CODES_ARGUMENT, tenants: Path = TENANTS_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Show what `apply` would change, without changing anything."""
    from infra.targets.local.runtime import local_reconciler

    reconciler = local_reconciler(specs_in(tenants), read_env())
    _print_changes(reconciler.plan(codes or None), as_json)


@app.command("apply")
@friendly_errors
def identity_apply(
    codes: list[str] = CODES_ARGUMENT, tenants: Path = TENANTS_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Create or update realms, clients, flows and themes until they match the specs."""
    from infra.targets.local.runtime import local_apply

    with err.status("Applying realms"):
        applied = local_apply(specs_in(tenants), read_env(), codes or None)
    _print_changes(applied.changes, as_json)
    if not as_json and applied.changes:
        typer.echo(f"Applied with {applied.writes} write request(s).")
    if not as_json and applied.restarted:
        typer.echo("Keycloak restarted to trust the providers' new CAs.")


@app.command("drift")
@friendly_errors
def identity_drift(
    codes: list[str] = CODES_ARGUMENT, tenants: Path = TENANTS_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Report managed settings changed outside the kit; exit 2 when there are any."""
    from infra.targets.local.runtime import local_reconciler

    reconciler = local_reconciler(specs_in(tenants), read_env())
    changes = reconciler.plan(codes or None)
    _print_changes(changes, as_json)
    raise typer.Exit(2 if changes else 0)


@app.command("destroy")
@friendly_errors
def identity_destroy(
    codes: list[str] = typer.Argument(..., help="Tenant codes to remove from Keycloak."),
    tenants: Path = TENANTS_OPTION,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete tenants' realms, their clients in the hub realm and their login themes."""
    from infra.targets.local.runtime import local_destroy

    if not yes:
        typer.confirm(f"Delete the realm(s) {', '.join(codes)} and all their users?", abort=True)
    for code in codes:
        removed = local_destroy(code, specs_in(tenants), read_env())
        typer.echo(f"{code}: removed {', '.join(removed) or 'nothing (not present)'}")


@app.command("secret")
@friendly_errors
def identity_secret(
    code: str = typer.Argument(..., help="The tenant whose provider names the secret."),
    name: str = typer.Argument(..., help="The secret's name, as the spec's {secret: …} gives it."),
) -> None:
    """Keep a provider's secret (read from standard input) in the tenant's local store.

    The spec names it, e.g. `clientSecret: {secret: parichay-client}`; `identity apply` puts it
    into Keycloak's vault, so neither the spec nor the admin API ever carries it.
    """
    import sys

    from infra.targets.local.runtime import store_provider_secret

    value = sys.stdin.read().rstrip("\r\n")
    path = store_provider_secret(code, name, value, read_env())
    typer.echo(f"{code}: secret {name} kept in {path}; run `karmayogi identity apply {code}`")


@app.command("sync")
@friendly_errors
def identity_sync(
    code: str = typer.Argument(..., help="The tenant whose directory to sync."),
    alias: str = typer.Argument(..., help="The directory's alias in spec.identity.providers."),
    full: bool = typer.Option(False, "--full", help="All users, not only those changed."),
    tenants: Path = TENANTS_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Sync a directory's users into the realm now (it also syncs periodically)."""
    from infra.targets.local.runtime import sync_directory

    counts = sync_directory(code, alias, specs_in(tenants), read_env(), full=full)
    if as_json:
        typer.echo(json.dumps(counts))
    else:
        typer.echo(f"{code}/{alias}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
