"""`karmayogi federation …`: catalogue federation between the hub and the tenants."""

from __future__ import annotations

import base64
import getpass
import json
import socket
from pathlib import Path
from typing import Any

import typer

from infra.commands.common import (
    JSON_OPTION,
    TENANTS_OPTION,
    err,
    friendly_errors,
    read_env,
    specs_in,
)
from infra.errors import KitError
from infra.spec import TenantSpec
from infra.targets import target_for

app = typer.Typer(
    help="Catalogue federation between the hub and the tenants, and membership of a hub run "
    "by another deployment (request, admit, accept, members, suspend, resume, remove, "
    "rotate-credentials).",
    no_args_is_help=True,
)
TARGET_OPTION = typer.Option(None, "--target", help="Override the specs' deployment.target.")
BY_OPTION = typer.Option(None, "--by", help="Who does it, for the record (default: user@host).")


def _operator(by: str | None) -> str:
    return by or f"{getpass.getuser()}@{socket.gethostname()}"


def _membership(specs: list[TenantSpec], target: str | None) -> Any:
    """The membership of the deployment these specs make, through its target."""
    names = {target} if target else {s.spec.deployment.target for s in specs}
    if len(names) != 1:
        raise KitError(f"these specs deploy to {', '.join(sorted(names))}: give --target")
    return target_for(names.pop(), read_env()).membership(specs)


def _progress(message: str) -> None:
    err.print(f"[bold]>[/] {message}")


def _unverified_member(path: Path) -> str:
    """The member a credentials file names, read without checking it (only to pick whose
    portal checks it; the portal then verifies the whole file)."""
    try:
        payload = path.read_text(encoding="utf-8").strip().split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["member"])
    except (OSError, IndexError, ValueError, KeyError, TypeError):
        raise KitError(f"{path}: not a credentials file (a signed document from `admit`)") from None


@app.command("request")
@friendly_errors
def federation_request(
    code: str = typer.Argument(..., help="The tenant asking to join its hub."),
    out: Path = typer.Option(None, "--out", help="Where to write it (default: join-<code>.jws)."),
    tenants: Path = TENANTS_OPTION,
    target: str | None = TARGET_OPTION,
) -> None:
    """Write a join request for the hub a tenant's spec names as {code, url}: signed with the
    tenant's federation key, with a nonce and a date. It holds no secret: send it to the
    hub's operator by any channel."""
    specs = specs_in(tenants)
    done = _membership(specs, target).request(code, out or Path(f"join-{code}.jws"))
    typer.echo(f"wrote {done['file']}: {code} asks to join {done['hub']} ({done['hubUrl']})")


@app.command("admit")
@friendly_errors
def federation_admit(
    request: Path = typer.Argument(..., help="The join request a tenant sent."),
    out: Path = typer.Option(
        None, "--out", help="Where to write the credentials (default: credentials-<code>.jws)."
    ),
    by: str | None = BY_OPTION,
    max_age: int | None = typer.Option(
        None, "--max-age", help="Oldest request to accept, in seconds (default: 3 days)."
    ),
    tenants: Path = TENANTS_OPTION,
    target: str | None = TARGET_OPTION,
) -> None:
    """On the hub's deployment: verify a join request (signature against the keys URL it
    names, nonce never seen, date recent), make the member's clients in the hub realm, record
    it, and write its credentials file (0600; it holds secrets: send it over a channel you
    trust)."""
    specs = specs_in(tenants)
    membership = _membership(specs, target)
    default = Path(f"credentials-{request.stem.removeprefix('join-')}.jws")
    done = membership.admit(request, out or default, _operator(by), max_age)
    typer.echo(
        f"admitted {done['code']} ({done['name']}), keys at {done['keysUrl']}, "
        f"publishing: {'yes' if done['publish'] else 'no'}; credentials: {done['credentials']}"
    )


@app.command("accept")
@friendly_errors
def federation_accept(
    credentials: Path = typer.Argument(..., help="The credentials file the hub sent."),
    tenant: str | None = typer.Option(
        None, "--tenant", help="The tenant they are for (default: the one the file names)."
    ),
    tenants: Path = TENANTS_OPTION,
    target: str | None = TARGET_OPTION,
) -> None:
    """On the tenant's deployment: verify the hub's credentials against the keys of the hub
    its spec names, keep them in the secret store, sign in through the hub's realm, and run a
    first sync."""
    specs = specs_in(tenants)
    code = tenant or _unverified_member(credentials)
    report = _membership(specs, target).accept(code, credentials, _progress)
    typer.echo(report)


@app.command("members")
@friendly_errors
def federation_members(
    tenants: Path = TENANTS_OPTION, target: str | None = TARGET_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """The hub's members: status, admitted keys URL, who admitted them and when."""
    rows = _membership(specs_in(tenants), target).members()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        clients = ", ".join(
            f"{kind} {'on' if state.get('enabled') else 'off'}"
            if state.get("exists")
            else f"{kind} missing"
            for kind, state in sorted(row.get("clients", {}).items())
        )
        typer.echo(
            f"{row['code']}: {row['status']} ({row.get('source', '')}, admitted by "
            f"{row.get('admittedBy') or '-'} at {row.get('admittedAt') or '-'}), keys "
            f"{row.get('keysUrl', '')}; clients: {clients}"
        )


def _change(
    action: str, code: str, withdraw: bool, by: str | None, tenants: Path, target: str | None
) -> None:
    report = _membership(specs_in(tenants), target).change(
        action, code, withdraw=withdraw, by=_operator(by)
    )
    typer.echo(report or f"{action}: {code}")


WITHDRAW_OPTION = typer.Option(
    False, "--withdraw-courses", help="Also take the member's courses out of the hub's catalogue."
)


@app.command("suspend")
@friendly_errors
def federation_suspend(
    code: str = typer.Argument(..., help="The member."),
    withdraw_courses: bool = WITHDRAW_OPTION,
    by: str | None = BY_OPTION,
    tenants: Path = TENANTS_OPTION,
    target: str | None = TARGET_OPTION,
) -> None:
    """Suspend a member: its very next feed or xAPI call is refused (401), its clients in the
    hub realm are disabled and their sessions ended. Its courses stay listed unless
    --withdraw-courses."""
    _change("suspend", code, withdraw_courses, by, tenants, target)


@app.command("resume")
@friendly_errors
def federation_resume(
    code: str = typer.Argument(..., help="The member."),
    by: str | None = BY_OPTION,
    tenants: Path = TENANTS_OPTION,
    target: str | None = TARGET_OPTION,
) -> None:
    """Resume a suspended member: its calls and sign-ins work again."""
    _change("resume", code, False, by, tenants, target)


@app.command("remove")
@friendly_errors
def federation_remove(
    code: str = typer.Argument(..., help="The member."),
    by: str | None = BY_OPTION,
    tenants: Path = TENANTS_OPTION,
    target: str | None = TARGET_OPTION,
) -> None:
    """Remove a member: its record and its clients go, and its courses leave the hub's
    catalogue. Joining again takes a new request and admission."""
    _change("remove", code, True, by, tenants, target)


@app.command("rotate-credentials")
@friendly_errors
def federation_rotate_credentials(
    code: str = typer.Argument(..., help="The member."),
    out: Path = typer.Option(
        None, "--out", help="Where to write the credentials (default: credentials-<code>.jws)."
    ),
    tenants: Path = TENANTS_OPTION,
    target: str | None = TARGET_OPTION,
) -> None:
    """New secrets for a member's clients in the hub realm (the old ones stop working at
    once) in a new credentials file, which the member accepts as the first."""
    done = _membership(specs_in(tenants), target).rotate(
        code, out or Path(f"credentials-{code}.jws")
    )
    typer.echo(f"new credentials for {code}: {done['credentials']} (the old ones no longer work)")


@app.command("sync")
@friendly_errors
def federation_sync(
    code: str = typer.Argument(..., help="The tenant whose peers to pull."),
) -> None:
    """Pull every peer of a tenant's portal once (a tenant pulls the hub; the hub pulls every
    tenant that publishes): the course records, then the content packages of the courses."""
    from infra.home import KitHome
    from infra.targets.local.federation import pull_packages, sync_tenant

    env = read_env()
    home = KitHome.from_env(env)
    typer.echo(sync_tenant(code, home, env))
    typer.echo(pull_packages(code, home, env))


@app.command("deliver")
@friendly_errors
def federation_deliver(
    code: str = typer.Argument(..., help="The tenant whose xAPI outbox to send."),
    now: bool = typer.Option(
        False, "--now", help="Also send statements waiting out a failed attempt's backoff."
    ),
) -> None:
    """Send a tenant's due xAPI statements (course completions) to its hub once, as the
    syncer does after each sync."""
    from infra.home import KitHome
    from infra.targets.local.federation import deliver_statements

    env = read_env()
    typer.echo(deliver_statements(code, KitHome.from_env(env), env, now=now))


@app.command("status")
@friendly_errors
def federation_status_command(tenants: Path = TENANTS_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Per tenant and peer: cursor, lag, last success, last error, quarantined records and
    content packages. Exits 1 when a peer's last sync failed or anything sits in quarantine."""
    from infra.home import KitHome
    from infra.targets.local.federation import federation_status, sync_order
    from infra.targets.local.membership import LocalMembership

    env = read_env()
    home = KitHome.from_env(env)
    specs = specs_in(tenants)
    membership = LocalMembership(specs, home, env)
    result = {code: federation_status(code, home, env) for code in sync_order(specs)}
    for code, state in result.items():
        remote = membership.hub_status(code)
        if remote is not None:
            state["remote_hub"] = remote
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        for code, state in result.items():
            feed = state["feed"]
            typer.echo(f"{code}: feed of {feed['changes']} course(s), last {feed['last_position']}")
            remote = state.get("remote_hub")
            if remote:
                typer.echo(
                    f"  hub {remote['hub']} at {remote['url']}: {remote['reachability']}; "
                    f"token: {remote['token']}"
                )
            for peer in state["peers"]:
                error = f", last error: {peer['last_error']}" if peer["last_error"] else ""
                typer.echo(
                    f"  <- {peer['peer']}: cursor {peer['cursor']}, lag {peer['lag']}, "
                    f"last success {peer['last_success'] or 'never'}, "
                    f"quarantined {peer['quarantined']}, "
                    f"packages quarantined {peer.get('quarantined_packages', 0)}{error}"
                )
    troubled = any(
        p["last_error"] or p["quarantined"] or p.get("quarantined_packages")
        for s in result.values()
        for p in s["peers"]
    )
    troubled = troubled or any(
        not s["remote_hub"]["reachable"] or not s["remote_hub"]["token"].startswith("granted")
        for s in result.values()
        if "remote_hub" in s
    )
    raise typer.Exit(1 if troubled else 0)
