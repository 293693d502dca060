"""The ``karmayogi`` command line: thin commands that parse, call a typed function, print."""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections import deque
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

err = Console(stderr=True, highlight=False, soft_wrap=True)
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
    from infra.render.colors import accessible_palette

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
    from infra.targets.local.runtime import local_keycloak

    kc = local_keycloak(_env())
    with err.status(f"Installing Keycloak {kc.paths.version}"):
        dist = kc.install()
    typer.echo(f"Keycloak {kc.paths.version} installed in {dist}")


@keycloak_app.command("start")
@friendly_errors
def keycloak_start() -> None:
    """Start Keycloak in dev mode and wait until it is ready."""
    from infra.targets.local.runtime import local_keycloak

    kc = local_keycloak(_env())
    with err.status("Starting Keycloak (dev mode; the first start takes about a minute)"):
        status = kc.start()
    typer.echo(f"Keycloak {status.version} ready at {status.url} (pid {status.pid})")


@keycloak_app.command("stop")
@friendly_errors
def keycloak_stop() -> None:
    """Stop Keycloak by its PID; its data is kept."""
    from infra.targets.local.runtime import local_keycloak

    stopped = local_keycloak(_env()).stop()
    typer.echo("Keycloak stopped" if stopped else "Keycloak was not running")


@keycloak_app.command("status")
@friendly_errors
def keycloak_status(as_json: bool = JSON_OPTION) -> None:
    """Show Keycloak's URLs, PID and health; exit 1 when it is not healthy."""
    from infra.targets.local.runtime import local_keycloak

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
    from infra.targets.local.runtime import local_reconciler

    reconciler = local_reconciler(_specs(tenants), _env())
    _print_changes(reconciler.plan(codes or None), as_json)


@identity_app.command("apply")
@friendly_errors
def identity_apply(
    codes: list[str] = CODES_ARGUMENT, tenants: Path = TENANTS_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Create or update realms, clients, flows and themes until they match the specs."""
    from infra.targets.local.runtime import local_reconciler

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
    from infra.targets.local.runtime import local_reconciler

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
    from infra.targets.local.runtime import local_destroy

    if not yes:
        typer.confirm(f"Delete the realm(s) {', '.join(codes)} and all their users?", abort=True)
    for code in codes:
        removed = local_destroy(code, _specs(tenants), _env())
        typer.echo(f"{code}: removed {', '.join(removed) or 'nothing (not present)'}")


# --- the local federation ----------------------------------------------------------------


def _columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """Plain columns, not a rich table: URLs and passwords must survive narrow terminals whole
    (the last column is never padded or cut)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join([*(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])), row[-1]])
        for row in rows
    ]


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
    from infra.targets.local.runtime import local_up

    specs = _specs(tenants)  # a spec error stops here, before anything starts
    started = time.monotonic()

    def progress(message: str) -> None:
        err.print(f"[bold]>[/] [dim]{time.monotonic() - started:5.1f}s[/] {message}")

    try:
        result = local_up(specs, _env(), progress=progress, seed=seed, tenants=tenants.resolve())
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
        for t in result.tenants:
            login = f"{result.keycloak['url']}/realms/{t['realm']}/account/"
            rows.append((t["code"], t["type"], login, t["portal_url"] or "- (not running)"))
        typer.echo("\n".join(_columns(rows)))
        typer.echo("")
        accounts = [("TENANT", "ROLE", "USERNAME", "PASSWORD")]
        for code, people in result.demo_accounts.items():
            accounts += [(code, a["role"], a["username"], a["password"]) for a in people]
        if len(accounts) > 1:
            typer.echo("Demo accounts (sign in on each portal with its own):")
            typer.echo("\n".join(_columns(accounts)))
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


federation_app = typer.Typer(help="Catalogue federation between the hub and the tenants.")
app.add_typer(federation_app, name="federation")


@federation_app.command("sync")
@friendly_errors
def federation_sync(
    code: str = typer.Argument(..., help="The tenant whose peers to pull."),
) -> None:
    """Pull every peer of a tenant's portal once (a tenant pulls the hub; the hub pulls every
    tenant that publishes)."""
    from infra.home import KitHome
    from infra.targets.local.federation import sync_tenant

    env = _env()
    typer.echo(sync_tenant(code, KitHome.from_env(env), env))


@federation_app.command("status")
@friendly_errors
def federation_status_command(tenants: Path = TENANTS_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Per tenant and peer: cursor, lag, last success, last error, quarantined records.
    Exits 1 when a peer's last sync failed or records sit in quarantine."""
    from infra.home import KitHome
    from infra.targets.local.federation import federation_status, sync_order

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
    """Add a tenant's demo courses to its portal.

    Realistic courses in the tenant's languages; idempotent (a course whose slug exists is
    left alone). The portal must have been set up by `up`.
    """
    from infra.home import KitHome
    from infra.targets.local.portals import seed_portal

    env = _env()
    seed_portal(code, KitHome.from_env(env), env, if_empty=False)
    err.print(f"{code}: demo courses in place")


@app.command()
@friendly_errors
def down() -> None:
    """Stop everything `up` started, by PID; data is kept."""
    from infra.targets.local.runtime import local_down

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
    from infra.render.legacy import write_portal_env
    from infra.targets.local.runtime import local_keycloak

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
    """Each component's state, URLs, PIDs and federation lag.

    Exits 0 only when all are healthy: Keycloak, every portal, the syncer, and no peer whose
    last sync failed.
    """
    from infra.targets.local.runtime import local_status

    result = local_status(_specs(tenants), _env())
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

    env = _env()
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

    home = KitHome.from_env(_env())
    if not yes:
        typer.confirm(f"Delete every realm, portal, user and secret under {home.root}?", abort=True)
    stopped, removed = local_reset(_env())
    if stopped:
        typer.echo(f"Stopped {', '.join(stopped)}.")
    typer.echo(f"Removed {len(removed)} item(s) from {home.root}; archives kept.")


# --- tenant lifecycle ----------------------------------------------------------------------

tenant_app = typer.Typer(help="Onboard and offboard tenants.", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")


@tenant_app.command("new")
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


@tenant_app.command("remove")
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
        code, tenants, _env(), progress=lambda message: err.print(f"[bold]>[/] {message}")
    )
    typer.echo(f"{code} removed; archive: {archive.path}")


def main() -> None:
    app()
