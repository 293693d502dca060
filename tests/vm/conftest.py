"""One deployment rendered for the vm target once a session: the example hub and Bihar in
one deployment (one Keycloak at one login name), with a vault of generated secrets."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.cli import app
from tests.infra.examples import example_folder

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
LOGIN_DOMAIN = "auth.federation.example"


@dataclass(frozen=True)
class RenderedVm:
    tenants: Path  # the specs folder
    out: Path  # what `karmayogi render --target vm` wrote
    password_file: Path
    codes: tuple[str, ...]
    wheel: Path  # the kit's wheel, built once a session

    @property
    def inventory(self) -> Path:
        return self.out / "inventory"


def ansible_env(**extra: str) -> dict[str, str]:
    """The environment of ansible-* tools here: the kit's config, no colour, no warning noise."""
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": extra.pop("tmp", os.environ.get("TMPDIR", "/tmp")),
        "PYTHONWARNINGS": "ignore",
        **extra,
    }


def one_deployment(folder: Path, suffix: str) -> tuple[str, ...]:
    """The example hub and Bihar as one vm deployment sharing one Keycloak."""
    codes = example_folder(folder, suffix, names=("karmayogi-bharat", "bihar"))
    for code in codes.values():
        path = folder / f"{code}.yaml"
        text = path.read_text(encoding="utf-8")
        text = text.replace("target: local", "target: vm\n    name: national")
        text = re.sub(r"\n  identity:\n", f"\n  identity:\n    loginDomain: {LOGIN_DOMAIN}\n", text)
        path.write_text(text, encoding="utf-8")
    return tuple(codes.values())


def render_vm(rendered: RenderedVm, *extra: str, wheel: Path | None = None) -> str:
    args = ["render", *rendered.codes, "--target", "vm", "--out", str(rendered.out)]
    args += ["--tenants", str(rendered.tenants), "--vault-password-file"]
    args += [str(rendered.password_file), *extra]
    env = {"KARMAYOGI_KIT_WHEEL": str(wheel or rendered.wheel)}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="session")
def rendered_vm(tmp_path_factory: pytest.TempPathFactory, kit_wheel: Path) -> RenderedVm:
    root = tmp_path_factory.mktemp("vm")
    codes = one_deployment(root / "tenants", secrets.token_hex(3))
    password_file = root / "vault-password"
    password_file.write_text(secrets.token_urlsafe(24) + "\n", encoding="utf-8")
    password_file.chmod(0o600)
    rendered = RenderedVm(root / "tenants", root / "out", password_file, codes, kit_wheel)
    render_vm(rendered, "--host", "app.vm.example")
    return rendered
