"""The ``karmayogi`` command line: thin commands that parse, call a typed function, print."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from identity.errors import IdentityError
from infra.errors import KitError
from infra.spec import SpecError, TenantSpec, json_schema, load_specs

app = typer.Typer(
    help="Karmayogi Federation Kit: tenant specs in, learning platforms out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
keycloak_app = typer.Typer(help="The local Keycloak server.", no_args_is_help=True)
identity_app = typer.Typer(help="Realms, clients and themes in Keycloak.", no_args_is_help=True)
app.add_typer(keycloak_app, name="keycloak")
app.add_typer(identity_app, name="identity")

TENANTS_OPTION = typer.Option(Path("tenants"), "--tenants", help="Folder of tenant specs.")
JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts.")
CODES_ARGUMENT = typer.Argument(None, help="Tenant codes (default: every tenant).")

err = Console(stderr=True, highlight=False)
P = ParamSpec("P")
R = TypeVar("R")


def friendly_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the kit's errors into one line on stderr and exit 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except SpecError as exc:
            for problem in exc.problems:
                typer.echo(str(problem), err=True)
            raise typer.Exit(1) from None
        except (KitError, IdentityError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    return wrapper


def _env() -> dict[str, str]:
    return dict(os.environ)


def _specs(folder: Path) -> list[TenantSpec]:
    return load_specs([folder])


@app.command()
@friendly_errors
def schema() -> None:
    """Print the tenant spec's JSON Schema."""
    typer.echo(json.dumps(json_schema(), indent=2))


@app.command()
@friendly_errors
def validate(
    paths: list[Path] = typer.Argument(None, help="Spec files or folders (default: tenants/)."),
) -> None:
    """Check tenant specs, alone and together (codes, hub, domains, languages, logos)."""
    from infra.colors import accessible_palette

    specs = load_specs(paths or [Path("tenants")])
    for spec in specs:
        typer.echo(f"ok {spec.source}: {spec.metadata.code} ({spec.metadata.type})")
        colors = spec.spec.branding.colors
        for warning in accessible_palette(colors.primary, colors.accent).warnings:
            typer.echo(f"warning {spec.source}: spec.branding.{warning}", err=True)


# --- keycloak ----------------------------------------------------------------------------


@keycloak_app.command("install")
@friendly_errors
def keycloak_install() -> None:
    """Obtain the pinned Keycloak release, verify it and unpack it under the kit's home."""
    from infra.local import local_keycloak

    kc = local_keycloak(_env())
    with err.status(f"Installing Keycloak {kc.paths.version}"):
        dist = kc.install()
    typer.echo(f"Keycloak {kc.paths.version} installed in {dist}")


@keycloak_app.command("start")
@friendly_errors
def keycloak_start() -> None:
    """Start Keycloak in dev mode and wait until it is ready."""
    from infra.local import local_keycloak

    kc = local_keycloak(_env())
    with err.status("Starting Keycloak (dev mode; the first start takes about a minute)"):
        status = kc.start()
    typer.echo(f"Keycloak {status.version} ready at {status.url} (pid {status.pid})")


@keycloak_app.command("stop")
@friendly_errors
def keycloak_stop() -> None:
    """Stop Keycloak by its PID; its data is kept."""
    from infra.local import local_keycloak

    stopped = local_keycloak(_env()).stop()
    typer.echo("Keycloak stopped" if stopped else "Keycloak was not running")


@keycloak_app.command("status")
@friendly_errors
def keycloak_status(as_json: bool = JSON_OPTION) -> None:
    """Show Keycloak's URLs, PID and health; exit 1 when it is not healthy."""
    from infra.local import local_keycloak

    status = local_keycloak(_env()).status()
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


# --- identity ----------------------------------------------------------------------------


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


@identity_app.command("plan")
@friendly_errors
def identity_plan(
    codes: list[str] = CODES_ARGUMENT, tenants: Path = TENANTS_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Show what `apply` would change, without changing anything."""
    from infra.local import local_reconciler

    reconciler = local_reconciler(_specs(tenants), _env())
    _print_changes(reconciler.plan(codes or None), as_json)


@identity_app.command("apply")
@friendly_errors
def identity_apply(
    codes: list[str] = CODES_ARGUMENT, tenants: Path = TENANTS_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Create or update realms, clients, flows and themes until they match the specs."""
    from infra.local import local_reconciler

    reconciler = local_reconciler(_specs(tenants), _env())
    with err.status("Applying realms"):
        changes = reconciler.apply(codes or None)
    _print_changes(changes, as_json)
    if not as_json and changes:
        typer.echo(f"Applied with {reconciler.api.writes} write request(s).")


@identity_app.command("drift")
@friendly_errors
def identity_drift(
    codes: list[str] = CODES_ARGUMENT, tenants: Path = TENANTS_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Report managed settings changed outside the kit; exit 2 when there are any."""
    from infra.local import local_reconciler

    reconciler = local_reconciler(_specs(tenants), _env())
    changes = reconciler.plan(codes or None)
    _print_changes(changes, as_json)
    raise typer.Exit(2 if changes else 0)


@identity_app.command("destroy")
@friendly_errors
def identity_destroy(
    codes: list[str] = typer.Argument(..., help="Tenant codes to remove from Keycloak."),
    tenants: Path = TENANTS_OPTION,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete tenants' realms, their clients in the hub realm and their login themes."""
    from infra.local import local_destroy

    if not yes:
        typer.confirm(f"Delete the realm(s) {', '.join(codes)} and all their users?", abort=True)
    for code in codes:
        removed = local_destroy(code, _specs(tenants), _env())
        typer.echo(f"{code}: removed {', '.join(removed) or 'nothing (not present)'}")


# --- the local federation ----------------------------------------------------------------


@app.command()
@friendly_errors
def up(
    tenants: Path = TENANTS_OPTION,
    seed: bool = typer.Option(
        True, "--seed/--no-seed", help="Give a portal without courses its demo courses."
    ),
) -> None:
    """Start the local federation: Keycloak, every realm, then every tenant's portal."""
    from infra.local import local_up

    specs = _specs(tenants)
    result = local_up(
        specs,
        _env(),
        progress=lambda message: err.print(f"[bold]>[/] {message}"),
        seed=seed,
        tenants=tenants.resolve(),
    )
    # Plain columns, not a rich table: URLs must survive narrow terminals whole.
    rows = [("TENANT", "TYPE", "PORTAL")]
    rows += [(t["code"], t["type"], t["portal_url"] or "-") for t in result["tenants"]]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:2])]
        typer.echo("  ".join([*cells, row[2]]))
    typer.echo(f"Keycloak admin console: {result['keycloak']['url']}/admin/master/console/")
    typer.echo(
        f"Sign in with the username and password in {result['keycloak']['admin_credentials_file']}"
    )


federation_app = typer.Typer(help="Catalogue federation between the hub and the tenants.")
app.add_typer(federation_app, name="federation")


@federation_app.command("sync")
@friendly_errors
def federation_sync(
    code: str = typer.Argument(..., help="The tenant whose peers to pull."),
) -> None:
    """Pull every peer of a tenant's portal once (a tenant pulls the hub; the hub pulls every
    tenant that publishes)."""
    from infra.federation import sync_tenant
    from infra.home import KitHome

    env = _env()
    typer.echo(sync_tenant(code, KitHome.from_env(env), env))


@federation_app.command("status")
@friendly_errors
def federation_status_command(tenants: Path = TENANTS_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Per tenant and peer: cursor, lag, last success, last error, quarantined records.
    Exits 1 when a peer's last sync failed or records sit in quarantine."""
    from infra.federation import federation_status, sync_order
    from infra.home import KitHome

    env = _env()
    home = KitHome.from_env(env)
    result = {code: federation_status(code, home, env) for code in sync_order(_specs(tenants))}
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


@app.command("seed")
@friendly_errors
def seed_command(code: str = typer.Argument(..., help="The tenant's code.")) -> None:
    """Fill a tenant's portal with realistic demo courses in its languages (idempotent: a
    course whose slug exists is left alone). The portal must have been set up by `up`."""
    from infra.home import KitHome
    from infra.portals import seed_portal

    env = _env()
    seed_portal(code, KitHome.from_env(env), env, if_empty=False)
    err.print(f"{code}: demo courses in place")


@app.command()
@friendly_errors
def down() -> None:
    """Stop everything `up` started, by PID; data is kept."""
    from infra.local import local_down

    stopped = local_down(_env())
    typer.echo(f"Stopped {', '.join(stopped)}." if stopped else "Nothing was running.")


@app.command()
@friendly_errors
def render(
    code: str = typer.Argument(..., help="The tenant to render."),
    target: str = typer.Option("local", "--target", help="Deployment target (local)."),
    tenants: Path = TENANTS_OPTION,
) -> None:
    """Write the tenant's rendered configuration for a target and print where it went."""
    from infra.local import local_keycloak
    from infra.render import write_portal_env

    if target != "local":
        raise typer.BadParameter(f"target {target!r} is not built yet; only 'local' is")
    specs = _specs(tenants)
    spec = next((s for s in specs if s.code == code), None)
    if spec is None:
        raise KitError(f"no tenant spec with code {code!r} in {tenants}")
    kc = local_keycloak(_env())
    typer.echo(str(write_portal_env(spec, specs, kc.paths.home, kc.url)))


@app.command()
@friendly_errors
def status(tenants: Path = TENANTS_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Each component's state; exit 0 only when all are healthy."""
    from infra.local import local_status

    result = local_status(_specs(tenants), _env())
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        kc = result["keycloak"]
        typer.echo(
            f"Keycloak {kc['version']}: {'healthy' if kc['healthy'] else 'down'} {kc['url'] or ''}"
        )
        for tenant in result["tenants"]:
            state = "healthy" if tenant["healthy"] else "down"
            portal = tenant["portal_url"] or "-"
            typer.echo(f"  {tenant['code']:<20} portal {state:<8} {portal}  (pid {tenant['pid']})")
    healthy = result["keycloak"]["healthy"] and all(t["healthy"] for t in result["tenants"])
    raise typer.Exit(0 if healthy else 1)


def main() -> None:
    app()
