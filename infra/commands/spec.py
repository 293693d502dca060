"""Commands on the tenant specs themselves: `validate` and `schema`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from infra.commands.common import (
    friendly_errors,
)
from infra.spec import json_schema, load_specs

app = typer.Typer()


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
