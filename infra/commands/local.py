"""The embedded default's lifecycle: `up`, `seed`, `down`, `status`, `logs`, `reset`."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from pathlib import Path

import typer

from infra.commands.common import (
    JSON_OPTION,
    TENANTS_OPTION,
    columns,
    err,
    friendly_errors,
    read_env,
    specs_in,
)
from infra.errors import KitError
from infra.targets.local import LocalTarget

app = typer.Typer()


@app.command()
@friendly_errors
def up(
    tenants: Path = TENANTS_OPTION,
    seed: bool = typer.Option(
        True, "--seed/--no-seed", help="Give a portal not yet seeded its demo courses."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Start or repair the local federation.

    Keycloak, every realm, every tenant's portal, demo accounts and courses, a first
    federation sync and the syncer. Idempotent: run it again to finish or repair.
    """
    specs = specs_in(tenants)  # a spec error stops here, before anything starts
    started = time.monotonic()

    def progress(message: str) -> None:
        err.print(f"[bold]>[/] [dim]{time.monotonic() - started:5.1f}s[/] {message}")

    try:
        result = LocalTarget(read_env()).up(specs, progress, seed=seed, tenants=tenants.resolve())
    except KeyboardInterrupt:
        err.print(
            "Interrupted. What had started keeps running; `karmayogi up` again finishes the "
            "job, `karmayogi down` stops it."
        )
        # Leave now, without joining the threads still waiting on servers: once no thread is
        # between starting a server and recording its PID, every started server is named by a
        # state file (each written atomically), the lock goes with the process, and the next
        # `up` carries on.
        from infra.targets.local.processes import settle_spawns

        settle_spawns()
        sys.stderr.flush()
        os._exit(130)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        rows = [("TENANT", "TYPE", "LOGIN", "PORTAL")]
        keycloak = result.keycloak.get("public_url") or result.keycloak["url"]
        for t in result.tenants:
            login = f"{keycloak}/realms/{t['realm']}/account/"
            portal = t["public_url"] if t["portal_url"] else "- (not running)"
            rows.append((t["code"], t["type"], login, portal))
        typer.echo("\n".join(columns(rows)))
        typer.echo("")
        if result.keycloak.get("public_url"):
            routes = [("PUBLIC NAME", "ROUTE IT TO")]
            routes.append((result.keycloak["public_url"], result.keycloak["url"]))
            routes += [
                (t["public_url"], t["portal_url"]) for t in result.tenants if t["portal_url"]
            ]
            typer.echo("Public names: your TLS proxy routes these (X-Forwarded-Proto: https):")
            typer.echo("\n".join(columns(routes)))
            typer.echo("")
        accounts = [("TENANT", "ROLE", "USERNAME", "PASSWORD")]
        for code, people in result.demo_accounts.items():
            accounts += [(code, a["role"], a["username"], a["password"]) for a in people]
        if len(accounts) > 1:
            typer.echo("Demo accounts (sign in on each portal with its own):")
            typer.echo("\n".join(columns(accounts)))
            typer.echo(
                "The demo tenant admins sign in without OTP on this embedded default only; "
                "every other tenant admin must enrol OTP. Passwords are kept in "
                f"{result.demo_accounts_file}."
            )
        typer.echo(f"Keycloak admin console: {result.keycloak['url']}/admin/master/console/")
        typer.echo(
            f"  sign in with the username and password in "
            f"{result.keycloak['admin_credentials_file']}"
        )
        typer.echo(f"Ready in {time.monotonic() - started:.0f} s. `karmayogi status` checks it.")
    for failure in result.failures.values():
        typer.echo(f"error: {failure}", err=True)
    if result.failures:
        raise typer.Exit(1)


@app.command("seed")
@friendly_errors
def seed_command(code: str = typer.Argument(..., help="The tenant's code.")) -> None:
    """Add a tenant's demo courses to its portal.

    Realistic courses in the tenant's languages; idempotent (a course whose slug exists is
    left alone). The portal must have been set up by `up`.
    """
    from infra.home import KitHome
    from infra.targets.local.portals import seed_portal

    env = read_env()
    seed_portal(code, KitHome.from_env(env), env, if_empty=False)
    err.print(f"{code}: demo courses in place")


@app.command()
@friendly_errors
def down() -> None:
    """Stop everything `up` started, by PID; data is kept."""
    from infra.targets.local.runtime import local_down

    stopped = local_down(read_env())
    typer.echo(f"Stopped {', '.join(stopped)}." if stopped else "Nothing was running.")


@app.command()
@friendly_errors
def status(tenants: Path = TENANTS_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Each component's state, URLs, PIDs and federation lag.

    Exits 0 only when all are healthy: Keycloak, every portal, the syncer, and no peer whose
    last sync failed.
    """
    from infra.targets.local.runtime import local_status

    result = local_status(specs_in(tenants), read_env())
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        kc = result["keycloak"]
        state = "healthy" if kc["healthy"] else "DOWN"
        typer.echo(f"Keycloak {kc['version']}: {state} {kc['url'] or ''} (pid {kc['pid']})")
        syncer = result["syncer"]
        typer.echo(
            f"federation syncer: {'running' if syncer['running'] else 'NOT RUNNING'}"
            f" (pid {syncer['pid']})"
        )
        for tenant in result["tenants"]:
            state = "healthy" if tenant["healthy"] else "DOWN"
            portal = tenant["portal_url"] or "-"
            typer.echo(f"  {tenant['code']:<20} portal {state:<8} {portal}  (pid {tenant['pid']})")
            federation = tenant["federation"] or {}
            for peer in federation.get("peers", []):
                error = f", last error: {peer['last_error']}" if peer["last_error"] else ""
                typer.echo(
                    f"  {'':<20} <- {peer['peer']}: lag {peer['lag']}, "
                    f"last success {peer['last_success'] or 'never'}{error}"
                )
            if not federation.get("peers"):  # peers' errors are on their lines above
                for problem in federation.get("errors", []):
                    typer.echo(f"  {'':<20} federation: {problem}")
        typer.echo("all healthy" if result["healthy"] else "NOT all healthy")
    raise typer.Exit(0 if result["healthy"] else 1)


@app.command()
@friendly_errors
def logs(
    name: str = typer.Argument(..., help="A tenant's code, 'keycloak' or 'federation'."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    lines: int = typer.Option(40, "--lines", "-n", help="How many of the last lines to show."),
) -> None:
    """Print the end of a component's log (and follow it with -f, until Ctrl-C)."""
    from infra.home import KitHome
    from infra.targets.local.portals import log_path
    from infra.targets.local.runtime import local_keycloak

    env = read_env()
    home = KitHome.from_env(env)
    path = local_keycloak(env).paths.log if name == "keycloak" else log_path(name, home)
    if not path.is_file():
        known = sorted(p.stem for p in home.logs.glob("*.log")) if home.logs.is_dir() else []
        raise KitError(
            f"no log for {name!r} under {home.logs}; known: {', '.join(known) or 'none yet'}"
        )
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in deque(handle, maxlen=max(lines, 0)):
            typer.echo(line, nl=False)
        if not follow:
            return
        try:
            while True:
                line = handle.readline()
                if line:
                    typer.echo(line, nl=False)
                else:
                    time.sleep(0.3)
        except KeyboardInterrupt:
            raise typer.Exit(0) from None


@app.command()
@friendly_errors
def reset(
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Stop everything and delete the local state.

    Deletes Keycloak's data, portals, secrets and logs; offboarding archives and the
    downloaded Keycloak are kept.
    """
    from infra.home import KitHome
    from infra.targets.local.runtime import local_reset

    home = KitHome.from_env(read_env())
    if not yes:
        typer.confirm(f"Delete every realm, portal, user and secret under {home.root}?", abort=True)
    stopped, removed = local_reset(read_env())
    if stopped:
        typer.echo(f"Stopped {', '.join(stopped)}.")
    typer.echo(f"Removed {len(removed)} item(s) from {home.root}; archives kept.")
