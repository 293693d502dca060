"""`karmayogi keycloak …`: the local Keycloak server."""

from __future__ import annotations

import json

import typer

from infra.commands.common import (
    JSON_OPTION,
    err,
    friendly_errors,
    read_env,
)

app = typer.Typer(help="The local Keycloak server.", no_args_is_help=True)


@app.command("install")
@friendly_errors
def keycloak_install() -> None:
    """Obtain the pinned Keycloak release, verify it and unpack it under the kit's home."""
    from infra.targets.local.runtime import local_keycloak

    kc = local_keycloak(read_env())
    with err.status(f"Installing Keycloak {kc.paths.version}"):
        dist = kc.install()
    typer.echo(f"Keycloak {kc.paths.version} installed in {dist}")


@app.command("start")
@friendly_errors
def keycloak_start() -> None:
    """Start Keycloak in dev mode and wait until it is ready."""
    from infra.targets.local.runtime import local_keycloak

    kc = local_keycloak(read_env())
    with err.status("Starting Keycloak (dev mode; the first start takes about a minute)"):
        status = kc.start()
    typer.echo(f"Keycloak {status.version} ready at {status.url} (pid {status.pid})")


@app.command("stop")
@friendly_errors
def keycloak_stop() -> None:
    """Stop Keycloak by its PID; its data is kept."""
    from infra.targets.local.runtime import local_keycloak

    stopped = local_keycloak(read_env()).stop()
    typer.echo("Keycloak stopped" if stopped else "Keycloak was not running")


@app.command("status")
@friendly_errors
def keycloak_status(as_json: bool = JSON_OPTION) -> None:
    """Show Keycloak's URLs, PID and health; exit 1 when it is not healthy."""
    from infra.targets.local.runtime import local_keycloak

    status = local_keycloak(read_env()).status()
    if as_json:
        typer.echo(json.dumps(status.as_dict(), indent=2))
    else:
        state = (
            "healthy" if status.healthy else "not running" if status.pid is None else "unhealthy"
        )
        typer.echo(f"Keycloak {status.version}: {state}")
        for key in ("url", "management_url", "pid", "admin_credentials_file"):
            typer.echo(f"  {key}: {status.as_dict()[key]}")
    raise typer.Exit(0 if status.healthy else 1)
