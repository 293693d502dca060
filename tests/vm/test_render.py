"""`karmayogi render --target vm`: an inventory Ansible reads with the vault, secrets only in
the vault (generated once, kept after), one host or the database on a host of its own."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from infra.cli import app
from infra.targets.vm import VAULT_FILE, read_vault
from tests.vm.conftest import RenderedVm, ansible_env, render_vm
from tests.vm.test_playbooks import tool


def inventory_list(rendered: RenderedVm, tmp_path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [
            tool("ansible-inventory"),
            "-i",
            str(rendered.inventory),
            "--list",
            "--vault-password-file",
            str(rendered.password_file),
        ],
        capture_output=True,
        text=True,
        env=ansible_env(tmp=str(tmp_path)),
        check=True,
    )
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def test_the_inventory_parses_with_the_vault_and_names_every_role_input(
    rendered_vm: RenderedVm, tmp_path: Path
) -> None:
    listed = inventory_list(rendered_vm, tmp_path)
    assert listed["karmayogi_app"]["hosts"] == ["app.vm.example"]
    assert listed["karmayogi_database"]["hosts"] == ["app.vm.example"]
    host = listed["_meta"]["hostvars"]["app.vm.example"]
    hub, bihar = sorted(rendered_vm.codes, key=lambda c: not c.startswith("karmayogi"))
    portals = {p["code"]: p for p in host["portal_tenants"]}
    assert set(portals) == {hub, bihar}
    assert portals[bihar]["settings"]["KARMAYOGI_OIDC_ISSUER"] == (
        f"https://auth.federation.example/realms/{bihar}"
    )
    # Secrets are settings read from files on the host, named by vault variable here.
    assert set(portals[bihar]["secrets"]) == {
        "DJANGO_SECRET_KEY",
        "DATABASE_URL",
        "KARMAYOGI_OIDC_CLIENT_SECRET",
        "KARMAYOGI_FEDERATION_CLIENT_SECRET",
    }
    assert "clientSecret" not in portals[bihar]["settings"]["KARMAYOGI_FEDERATION"]
    assert host["nginx_keycloak_domain"] == "auth.federation.example"
    assert {d["name"] for d in host["postgresql_databases"]} == {
        "keycloak",
        f"portal_{hub.replace('-', '_')}",
        f"portal_{bihar.replace('-', '_')}",
    }
    vault = read_vault(rendered_vm.out / VAULT_FILE, rendered_vm.password_file)
    assert "vault_karmayogi_national_keycloak_db_password" in vault
    assert f"vault_karmayogi_{bihar.replace('-', '_')}_broker_client_secret" in vault
    assert (rendered_vm.out / VAULT_FILE).stat().st_mode & 0o077 == 0


def test_no_secret_value_is_in_a_plain_file(rendered_vm: RenderedVm) -> None:
    vault_path = rendered_vm.out / VAULT_FILE
    assert vault_path.read_text(encoding="utf-8").startswith("$ANSIBLE_VAULT;1.1;AES256")
    values = [
        v
        for v in read_vault(vault_path, rendered_vm.password_file).values()
        if "{{" not in v  # a database URL is made from its password variable on the host
    ]
    assert len(values) >= 10
    for path in rendered_vm.out.rglob("*"):
        if path.is_file() and path != vault_path:
            content = path.read_bytes()
            leaked = [v for v in values if v.encode() in content]
            assert not leaked, f"{path} holds a secret"


def test_a_second_render_keeps_the_secrets_and_the_operators_files(
    rendered_vm: RenderedVm, tmp_path: Path
) -> None:
    copy = RenderedVm(
        rendered_vm.tenants,
        tmp_path / "out",
        rendered_vm.password_file,
        rendered_vm.codes,
        rendered_vm.wheel,
    )
    shutil.copytree(rendered_vm.out, copy.out)
    site = copy.inventory / "group_vars" / "all" / "site.yml"
    site.write_text(site.read_text() + "backup_keep: 30\n", encoding="utf-8")
    before = read_vault(copy.out / VAULT_FILE, copy.password_file)
    output = render_vm(copy)  # no --host: the hosts file is kept
    assert read_vault(copy.out / VAULT_FILE, copy.password_file) == before
    assert "backup_keep: 30" in site.read_text()
    assert not any(value in output for value in before.values())


def test_without_a_vault_password_file_render_says_so_in_one_line(
    rendered_vm: RenderedVm, tmp_path: Path
) -> None:
    args = ["render", *rendered_vm.codes, "--target", "vm", "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, [*args, "--tenants", str(rendered_vm.tenants)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: the vm target keeps secrets in an Ansible Vault: give --vault-password-file "
        "FILE (a file holding the vault's password, kept out of git)"
    ]
    wrong = tmp_path / "wrong"
    wrong.write_text("not the password\n", encoding="utf-8")
    copy = tmp_path / "copy"
    shutil.copytree(rendered_vm.out, copy)
    before = (copy / VAULT_FILE).read_bytes()
    args = ["render", *rendered_vm.codes, "--target", "vm", "--out", str(copy)]
    args += ["--tenants", str(rendered_vm.tenants), "--vault-password-file", str(wrong)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "cannot decrypt the vault with the given password file" in result.output
    assert (copy / VAULT_FILE).read_bytes() == before


def test_the_database_on_a_host_of_its_own(rendered_vm: RenderedVm, tmp_path: Path) -> None:
    split = RenderedVm(
        rendered_vm.tenants,
        tmp_path / "out",
        rendered_vm.password_file,
        rendered_vm.codes,
        rendered_vm.wheel,
    )
    render_vm(split, "--host", "10.20.0.5", "--database-host", "10.20.0.6")
    listed = inventory_list(split, tmp_path)
    assert listed["karmayogi_app"]["hosts"] == ["10.20.0.5"]
    assert listed["karmayogi_database"]["hosts"] == ["10.20.0.6"]
    db = listed["_meta"]["hostvars"]["10.20.0.6"]
    assert db["common_database_clients"] == ["10.20.0.5"]
    assert db["postgresql_client_networks"] == ["10.20.0.5/32"]
    conf = (split.out / "keycloak/conf/keycloak.conf").read_text()
    assert "\ndb-url-host=10.20.0.6\n" in conf
    vault = read_vault(split.out / VAULT_FILE, split.password_file)
    url = next(v for k, v in vault.items() if k.endswith("_database_url"))
    assert "@{{ karmayogi_database_host }}:5432/" in url
    assert db["karmayogi_database_host"] == "10.20.0.6"
