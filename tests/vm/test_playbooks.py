"""The playbooks pass ansible-lint's production profile and Ansible's syntax check, and a
wrong inventory stops site.yml in its first task, on the controller, naming the variable."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from infra.net import free_port
from tests.vm.conftest import PLAYBOOKS, RenderedVm, ansible_env

BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"


def tool(name: str) -> str:
    found = BIN / name
    return str(found) if found.exists() else name


def test_ansible_lint_passes_the_production_profile_offline(tmp_path: Path) -> None:
    done = subprocess.run(
        [tool("ansible-lint"), "--offline", "--profile", "production", "--nocolor", "playbooks/"],
        cwd=PLAYBOOKS.parent,
        capture_output=True,
        text=True,
        env=ansible_env(tmp=str(tmp_path), HOME=str(tmp_path)),
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Profile 'production' was required, and it passed" in done.stderr


@pytest.mark.parametrize("playbook", sorted(p.name for p in PLAYBOOKS.glob("*.yml")))
def test_every_playbook_passes_the_syntax_check(
    rendered_vm: RenderedVm, playbook: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [
            tool("ansible-playbook"),
            "--syntax-check",
            "-i",
            str(rendered_vm.inventory),
            "--vault-password-file",
            str(rendered_vm.password_file),
            str(PLAYBOOKS / playbook),
        ],
        capture_output=True,
        text=True,
        env=ansible_env(tmp=str(tmp_path)),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _broken_inventory(rendered: RenderedVm, tmp_path: Path, change: dict[str, object]) -> Path:
    """A copy of the rendered inventory with ``change`` applied to the rendered variables
    (a value of None removes the variable), its one host on a loopback port nothing
    listens on: a task that tried to reach it would fail as unreachable."""
    inventory = tmp_path / "inventory"
    shutil.copytree(rendered.inventory, inventory)
    # The rendered variables name files beside the inventory.
    for name in ("keycloak", "portal", "specs", "dist"):
        (tmp_path / name).symlink_to(rendered.out / name)
    yaml = YAML(typ="rt")
    path = inventory / "group_vars" / "all" / "rendered.yml"
    data = yaml.load(path.read_text(encoding="utf-8"))
    for key, value in change.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    with path.open("w", encoding="utf-8") as handle:
        yaml.dump(data, handle)
    port = free_port("127.0.0.1")
    (inventory / "hosts.yml").write_text(
        "karmayogi_app:\n  hosts:\n    app.vm.example:\n"
        f"      ansible_host: 127.0.0.1\n      ansible_port: {port}\n"
        "karmayogi_database:\n  hosts:\n    app.vm.example:\n",
        encoding="utf-8",
    )
    return inventory


def _run_site(rendered: RenderedVm, inventory: Path, tmp_path: Path) -> str:
    done = subprocess.run(
        [
            tool("ansible-playbook"),
            "--check",
            "-i",
            str(inventory),
            "--vault-password-file",
            str(rendered.password_file),
            str(PLAYBOOKS / "site.yml"),
        ],
        capture_output=True,
        text=True,
        env=ansible_env(tmp=str(tmp_path)),
        check=False,
    )
    assert done.returncode != 0
    return done.stdout + done.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"portal_tenants": None}, "missing required arguments: portal_tenants"),
        (
            {"keycloak_heap": "768m", "keycloak_http_port": "eighty"},
            "argument 'keycloak_http_port' is of type str",
        ),
        ({"postgresql_databases": "portal_bihar"}, "option 'postgresql_databases' is of type str"),
    ],
    ids=["missing", "not-an-int", "not-a-list"],
)
def test_a_wrong_variable_fails_in_the_first_task_before_any_host_is_reached(
    rendered_vm: RenderedVm, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    output = _run_site(rendered_vm, _broken_inventory(rendered_vm, tmp_path, change), tmp_path)
    assert message in output, output
    first_task = "TASK [Validate the variables of each role this host runs]"
    assert output.index(first_task) < output.index(message)
    # Nothing after the first play ran, and no connection was tried.
    assert "TASK [" not in output.split(first_task, 1)[1], output
    assert "unreachable=0" in output and "ok=0" in output, output
    assert "UNREACHABLE" not in output


def test_the_keycloak_role_takes_the_state_s_secrets_and_cas_and_never_shows_secrets(
    rendered_vm: RenderedVm, tmp_path: Path
) -> None:
    secret = "{{ vault_karmayogi_national_keycloak_db_password }}"
    good = {
        "keycloak_vault_secrets": [{"file": "bihar_parichay-client", "value": secret}],
        "keycloak_truststore_files": [{"name": "bihar.pem", "src": "/srv/bihar.pem"}],
    }
    output = _run_site(
        rendered_vm, _broken_inventory(rendered_vm, tmp_path / "good", good), tmp_path
    )
    # Every role's variables passed: the play went on to the host, which is not there.
    assert "UNREACHABLE" in output, output
    assert "keycloak_vault_secrets" not in output

    bad = [{"file": "bihar_parichay-client"}]
    output = _run_site(
        rendered_vm,
        _broken_inventory(rendered_vm, tmp_path / "bad", {"keycloak_vault_secrets": bad}),
        tmp_path,
    )
    assert "missing required arguments: value found in keycloak_vault_secrets" in output, output
    assert "UNREACHABLE" not in output
