"""`karmayogi deploy|destroy <code> --target aws` on a machine without the Pulumi CLI: one line
saying what to install, before anything is touched (the engine cannot run here, docs/aws.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.cli import app

TENANTS = Path(__file__).resolve().parents[3] / "tenants"
INSTALL = (
    "error: the aws target needs the Pulumi CLI and its AWS plugin: install Pulumi "
    "(https://www.pulumi.com/docs/install/), then run `pulumi plugin install resource aws`\n"
)


@pytest.mark.parametrize(
    "command",
    [
        ["deploy", "bihar", "--target", "aws", "--preview"],
        ["deploy", "bihar", "--target", "aws"],
        ["destroy", "bihar", "--target", "aws"],
    ],
)
def test_without_the_pulumi_cli_the_command_names_what_to_install(
    command: list[str], tmp_path: Path
) -> None:
    # A PATH with no pulumi on it: the machine's own state, made explicit.
    result = CliRunner().invoke(
        app, [*command, "--tenants", str(TENANTS)], env={"PATH": str(tmp_path)}
    )
    assert result.exit_code == 1
    assert result.stderr == INSTALL
    assert result.stdout == ""


def test_preview_is_refused_for_other_targets() -> None:
    result = CliRunner().invoke(
        app, ["deploy", "bihar", "--target", "vm", "--preview", "--tenants", str(TENANTS)]
    )
    assert result.exit_code == 1
    assert result.stderr == "error: --preview is for the aws target\n"
