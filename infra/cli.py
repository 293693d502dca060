"""The ``karmayogi`` command line, assembled from one module per command group.

Commands are thin: parse, call a typed function, print (``infra/commands/``).
"""

from __future__ import annotations

import typer

from infra.commands import (
    backup,
    bundle,
    federation,
    identity,
    keycloak,
    local,
    platform,
    spec,
    targets,
    tenant,
)

app = typer.Typer(
    help="Karmayogi Federation Kit: tenant specs in, learning platforms out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(spec.app)
app.add_typer(local.app)
app.add_typer(targets.app)
app.add_typer(backup.app)
app.add_typer(bundle.app)
app.add_typer(keycloak.app, name="keycloak")
app.add_typer(identity.app, name="identity")
app.add_typer(federation.app, name="federation")
app.add_typer(tenant.app, name="tenant")
app.add_typer(platform.app, name="platform")


def main() -> None:
    app()
