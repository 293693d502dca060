"""`karmayogi bundle`: the wheelhouse an offline server installs the kit from."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from infra.bundle import build_wheelhouse
from infra.commands.common import JSON_OPTION, friendly_errors, read_env
from infra.home import KitHome

app = typer.Typer()


@app.command()
@friendly_errors
def bundle(
    out: Path = typer.Option(
        None, "--out", help="Folder for the wheels (default: the kit's cache, per pyproject)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Build the kit and its dependencies as wheels, for `pip install --no-index --find-links`."""
    home = KitHome.from_env(read_env())
    house = build_wheelhouse(home.cache, out=out, output=sys.stderr)
    if as_json:
        typer.echo(
            json.dumps({"path": str(house.path), "key": house.key, "wheels": list(house.wheels)})
        )
        return
    typer.echo(f"{house.path}: {len(house.wheels)} wheels")
    typer.echo(f"install with: pip install --no-index --find-links {house.path} karmayogi-kit")
