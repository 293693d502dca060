"""The embedded default's lifecycle: `up`, `seed`, `down`, `status`, `logs`, `reset`."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

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
from infra.targets import target_for
from infra.targets.local import LocalTarget

app = typer.Typer()


TARGET_OPTION = typer.Option(
    None, "--target", help="local or vm (default: the folder's target when all share one)."
)
OUT_OPTION = typer.Option(
    None, "--out", help="vm: the folder render wrote (default: rendered/<first code>)."
)
VAULT_OPTION = typer.Option(None, "--vault-password-file", help="vm: the vault's password file.")


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
def status(
    tenants: Path = TENANTS_OPTION,
    as_json: bool = JSON_OPTION,
    target: str | None = TARGET_OPTION,
    out: Path | None = OUT_OPTION,
    vault_password_file: Path | None = VAULT_OPTION,
) -> None:
    """Each component's state, URLs, PIDs and federation lag.

    Exits 0 only when all are healthy: Keycloak, every portal, the syncer, and no peer whose
    last sync failed. On the vm target: each app host's services, portals, timers and the last
    sync, delivery and backup, read on the host through Ansible. On the kubernetes target:
    each deployment's Keycloak release and each portal release, with its Deployment's replicas
    and any Pod waiting on an error, read through helm (KUBECONFIG names the cluster).
    """
    from infra.targets.local.runtime import local_status

    specs = specs_in(tenants)
    chosen = _chosen_target(tenants, target)
    if chosen != "local":
        env = read_env() | _remote_env(out, vault_password_file)
        remote = target_for(chosen, env).status(specs)
        if as_json:
            typer.echo(json.dumps(remote, indent=2))
        else:
            _print_remote_status(remote)
        raise typer.Exit(0 if remote["healthy"] else 1)
    result = local_status(specs, read_env())
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


def _chosen_target(tenants: Path, target: str | None) -> str:
    """``--target``, else the folder's target when every spec in it shares one, else local."""
    if target:
        return target
    if not tenants.is_dir():  # `logs keycloak` from anywhere reads the local target's
        return "local"
    named = {s.spec.deployment.target for s in specs_in(tenants)}
    return named.pop() if len(named) == 1 else "local"


def _remote_env(out: Path | None, vault_password_file: Path | None) -> dict[str, str]:
    given = {"KARMAYOGI_RENDER_DIR": out, "ANSIBLE_VAULT_PASSWORD_FILE": vault_password_file}
    return {name: str(value) for name, value in given.items() if value}


def _print_remote_status(result: dict[str, Any]) -> None:
    """A production target's status as lines: the kubernetes target's Helm releases, or the
    vm target's hosts."""
    if "releases" in result:
        for release in result["releases"]:
            replicas = ", ".join(
                f"{w['name']} {w['available']}/{w['replicas']} available"
                for w in release["workloads"]
            )
            revision = f" revision {release['revision']}" if release["revision"] else ""
            typer.echo(
                f"{release['release']:<24} {release['namespace']:<24} {release['state']}"
                f"{revision}{'; ' + replicas if replicas else ''}"
            )
            for problem in release["problems"]:
                typer.echo(f"  {'':<22} {problem}")
        typer.echo("all healthy" if result["healthy"] else "NOT all healthy")
        return
    _print_host_status(result)


def _print_host_status(result: dict[str, Any]) -> None:
    """The vm target's status as lines: a host, its services, then each portal."""

    def ran(unit: dict[str, Any]) -> str:
        if not unit["last_run"]:
            return "not run yet"
        return f"last run {unit['last_run']}: {unit['result']}"

    for host in result["hosts"]:
        state = "healthy" if host["healthy"] else "NOT healthy"
        typer.echo(f"{host.get('host', host['address'])} ({host['address']}): {state}")
        if "error" in host:
            typer.echo(f"  unreachable: {host['error']}")
            continue
        for name, unit in host["services"].items():
            if unit["installed"]:
                typer.echo(f"  {name:<12} {unit['state']}")
        typer.echo(f"  {'keycloak':<12} ready: {'yes' if host['keycloak_ready'] else 'NO'}")
        for tenant in host["tenants"]:
            portal = "healthy" if tenant["healthy"] else "NOT healthy"
            typer.echo(f"  {tenant['code']:<20} portal {tenant['portal']['state']}, {portal}")
            typer.echo(f"  {'':<20} sync {ran(tenant['sync'])}; xAPI {ran(tenant['xapi'])}")
        typer.echo(f"  backup: {ran(host['backup'])}")
    typer.echo("all healthy" if result["healthy"] else "NOT all healthy")


@app.command()
@friendly_errors
def logs(
    name: str = typer.Argument(..., help="A tenant's code, 'keycloak' or 'federation'."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    lines: int = typer.Option(40, "--lines", "-n", help="How many of the last lines to show."),
    tenants: Path = TENANTS_OPTION,
    target: str | None = TARGET_OPTION,
    out: Path | None = OUT_OPTION,
    vault_password_file: Path | None = VAULT_OPTION,
) -> None:
    """Print the end of a component's log (and follow it with -f, until Ctrl-C).

    On the vm target: the component's journal on every app host (also `nginx`, `backup`),
    read through Ansible and kept in <render>/logs/; -f is not offered there.
    """
    from infra.home import KitHome
    from infra.targets.local.portals import log_path
    from infra.targets.local.runtime import local_keycloak

    env = read_env()
    chosen = _chosen_target(tenants, target)
    if chosen != "local":
        if follow:
            raise KitError(
                f"--follow works on the local target only; on {chosen} use journalctl -f"
            )
        env |= _remote_env(out, vault_password_file)
        path = target_for(chosen, env).logs(name)
    else:
        home = KitHome.from_env(env)
        path = local_keycloak(env).paths.log if name == "keycloak" else log_path(name, home)
    if chosen != "local":
        for line in deque(path.read_text(encoding="utf-8").splitlines(), maxlen=max(lines, 0)):
            typer.echo(line)
        return
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
