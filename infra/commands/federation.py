"""`karmayogi federation …`: catalogue federation between the hub and the tenants."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from infra.commands.common import (
    JSON_OPTION,
    TENANTS_OPTION,
    friendly_errors,
    read_env,
    specs_in,
)

app = typer.Typer(
    help="Catalogue federation between the hub and the tenants.", no_args_is_help=True
)


@app.command("sync")
@friendly_errors
def federation_sync(
    code: str = typer.Argument(..., help="The tenant whose peers to pull."),
) -> None:
    """Pull every peer of a tenant's portal once (a tenant pulls the hub; the hub pulls every
    tenant that publishes)."""
    from infra.home import KitHome
    from infra.targets.local.federation import sync_tenant

    env = read_env()
    typer.echo(sync_tenant(code, KitHome.from_env(env), env))


@app.command("status")
@friendly_errors
def federation_status_command(tenants: Path = TENANTS_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Per tenant and peer: cursor, lag, last success, last error, quarantined records.
    Exits 1 when a peer's last sync failed or records sit in quarantine."""
    from infra.home import KitHome
    from infra.targets.local.federation import federation_status, sync_order

    env = read_env()
    home = KitHome.from_env(env)
    result = {code: federation_status(code, home, env) for code in sync_order(specs_in(tenants))}
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        for code, state in result.items():
            feed = state["feed"]
            typer.echo(f"{code}: feed of {feed['changes']} course(s), last {feed['last_position']}")
            for peer in state["peers"]:
                error = f", last error: {peer['last_error']}" if peer["last_error"] else ""
                typer.echo(
                    f"  <- {peer['peer']}: cursor {peer['cursor']}, lag {peer['lag']}, "
                    f"last success {peer['last_success'] or 'never'}, "
                    f"quarantined {peer['quarantined']}{error}"
                )
    troubled = any(p["last_error"] or p["quarantined"] for s in result.values() for p in s["peers"])
    raise typer.Exit(1 if troubled else 0)
