"""What every command shares: options, the error wrapper, reading the environment."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console

from identity.errors import IdentityError
from infra.errors import KitError
from infra.spec import SpecError, TenantSpec, load_specs

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


def read_env() -> dict[str, str]:
    """The process environment, read here once and passed down as a value."""
    return dict(os.environ)


def specs_in(folder: Path) -> list[TenantSpec]:
    return load_specs([folder])


def columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """Plain columns, not a rich table: URLs and passwords must survive narrow terminals whole
    (the last column is never padded or cut)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join([*(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])), row[-1]])
        for row in rows
    ]
