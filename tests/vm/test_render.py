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
from tests.infra.test_provider_secrets import PARICHAY
from tests.rig.ca import CertificateAuthority
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


# --- the state's secrets: from the local store into the vault, onto Keycloak's vault folder ---

PARICHAY_SECRET = "s3cret-from-parichay-vm-7d1c"
SMTP_SECRET = "smtp-pass-of-the-deployment-42"
MAIL_DEFAULT = """apiVersion: karmayogi.dev/v1
kind: Deployment
spec:
  mail:
    host: smtp.federation.example
    from: karmayogi@federation.example
    user: karmayogi
    password: {secret: smtp-password}
"""


def _state_render(
    rendered_vm: RenderedVm, tmp_path: Path
) -> tuple[RenderedVm, dict[str, str], str, str]:
    """``rendered_vm``'s specs with Bihar on a Parichay-like SSO and the deployment's default
    mail server, the secrets kept with `karmayogi identity secret` in a home of the test's."""
    tenants = shutil.copytree(rendered_vm.tenants, tmp_path / "tenants")
    hub, bihar = sorted(rendered_vm.codes, key=lambda c: not c.startswith("karmayogi"))
    spec = tenants / f"{bihar}.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("providers: []", PARICHAY))
    (tenants / "deployment.yaml").write_text(MAIL_DEFAULT, encoding="utf-8")
    env = {"KARMAYOGI_HOME": str(tmp_path / "home"), "KARMAYOGI_CACHE": str(tmp_path / "c")}
    for code, name, value in (
        (bihar, "parichay-client", PARICHAY_SECRET),
        (bihar, "smtp-password", SMTP_SECRET),
        (hub, "smtp-password", SMTP_SECRET),
    ):
        kept = CliRunner().invoke(app, ["identity", "secret", code, name], input=value, env=env)
        assert kept.exit_code == 0, kept.output
    out = RenderedVm(
        tenants, tmp_path / "out", rendered_vm.password_file, rendered_vm.codes, rendered_vm.wheel
    )
    return out, env, hub, bihar


def _render(out: RenderedVm, env: dict[str, str], *extra: str) -> Any:
    args = ["render", *out.codes, "--target", "vm", "--out", str(out.out), "--tenants"]
    args += [str(out.tenants), "--vault-password-file", str(out.password_file), *extra]
    return CliRunner().invoke(app, args, env={**env, "KARMAYOGI_KIT_WHEEL": str(out.wheel)})


def test_the_state_s_secrets_go_from_the_store_into_the_vault_and_keycloak_s_vault_folder(
    rendered_vm: RenderedVm, tmp_path: Path
) -> None:
    out, env, hub, bihar = _state_render(rendered_vm, tmp_path)
    result = _render(out, env, "--host", "app.vm.example")
    assert result.exit_code == 0, result.output

    variable = f"vault_karmayogi_{bihar.replace('-', '_')}_state_parichay_client"
    smtp = {c: f"vault_karmayogi_{c.replace('-', '_')}_state_smtp_password" for c in (hub, bihar)}
    vault = read_vault(out.out / VAULT_FILE, out.password_file)
    assert vault[variable] == PARICHAY_SECRET
    assert vault[smtp[hub]] == vault[smtp[bihar]] == SMTP_SECRET
    assert (out.out / VAULT_FILE).read_text().startswith("$ANSIBLE_VAULT;1.1;AES256")

    # The keycloak role writes one file per realm and name, from the vault's variable.
    host = inventory_list(out, tmp_path)["_meta"]["hostvars"]["app.vm.example"]
    assert host["keycloak_vault_dir"] == "/opt/keycloak/vault"
    assert sorted(host["keycloak_vault_secrets"], key=lambda s: s["file"]) == sorted(
        [
            {"file": f"{bihar}_parichay-client", "value": "{{ " + variable + " }}"},
            {"file": f"{bihar}_smtp-password", "value": "{{ " + smtp[bihar] + " }}"},
            {"file": f"{hub}_smtp-password", "value": "{{ " + smtp[hub] + " }}"},
        ],
        key=lambda s: s["file"],
    )
    conf = (out.out / "keycloak/conf/keycloak.conf").read_text()
    assert "\nvault=file\n" in conf and "\nvault-dir=/opt/keycloak/vault\n" in conf
    # The realm step on the host reads the deployment's defaults beside the specs.
    assert (out.out / "specs" / "deployment.yaml").read_text() == MAIL_DEFAULT
    for path in out.out.rglob("*"):
        if path.is_file() and path != out.out / VAULT_FILE:
            content = path.read_bytes()
            assert PARICHAY_SECRET.encode() not in content, path
            assert SMTP_SECRET.encode() not in content, path
    assert PARICHAY_SECRET not in result.output and SMTP_SECRET not in result.output

    # A value changed in the store reaches the vault at the next render; the rest stays.
    before = read_vault(out.out / VAULT_FILE, out.password_file)
    changed = CliRunner().invoke(
        app, ["identity", "secret", bihar, "parichay-client"], input="rotated-9", env=env
    )
    assert changed.exit_code == 0
    assert _render(out, env).exit_code == 0
    after = read_vault(out.out / VAULT_FILE, out.password_file)
    assert after == {**before, variable: "rotated-9"}


def test_a_secret_the_store_lacks_stops_the_render_in_one_line_and_writes_no_vault(
    rendered_vm: RenderedVm, tmp_path: Path
) -> None:
    out, env, hub, _ = _state_render(rendered_vm, tmp_path)
    (tmp_path / "home" / "secrets" / f"tenant-{hub}.json").unlink()

    result = _render(out, env, "--host", "app.vm.example")

    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {out.tenants / 'deployment.yaml'}: spec.mail.password: secret "
        "'smtp-password' is not in the local secret store; add it with `karmayogi identity "
        f"secret {hub} smtp-password` (the value is read from standard input), then render again"
    ]
    assert not out.out.exists() or not any(out.out.iterdir())  # nothing written


DIRECTORY = """providers:
      - alias: secretariat
        type: ldap
        displayName: Secretariat directory
        ca: directory-ca.pem
        config:
          connectionUrl: ldaps://ldap.bihar.example
          usersDn: ou=people,dc=bihar,dc=example"""


def test_a_provider_s_ca_goes_to_the_host_for_keycloak_s_truststore(
    rendered_vm: RenderedVm, tmp_path: Path
) -> None:
    tenants = shutil.copytree(rendered_vm.tenants, tmp_path / "tenants")
    hub, bihar = sorted(rendered_vm.codes, key=lambda c: not c.startswith("karmayogi"))
    spec = tenants / f"{bihar}.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("providers: []", DIRECTORY))
    out = RenderedVm(
        tenants, tmp_path / "out", rendered_vm.password_file, rendered_vm.codes, rendered_vm.wheel
    )
    env = {"KARMAYOGI_HOME": str(tmp_path / "home"), "KARMAYOGI_CACHE": str(tmp_path / "c")}

    # A CA the spec names but nobody put beside it: one line, nothing written.
    missing = _render(out, env, "--host", "app.vm.example")
    assert missing.exit_code == 1
    assert missing.output.strip().splitlines() == [
        f"error: {spec}: spec.identity.providers[0].ca: cannot read the CA of provider "
        f"'secretariat' at {tenants / 'directory-ca.pem'} (No such file or directory)"
    ]
    assert not out.out.exists() or not any(out.out.iterdir())

    ca = CertificateAuthority.create(tmp_path / "ca", common_name="Bihar directory CA")
    shutil.copyfile(ca.bundle_path, tenants / "directory-ca.pem")
    result = _render(out, env, "--host", "app.vm.example")
    assert result.exit_code == 0, result.output

    rendered_ca = out.out / "keycloak" / "truststore" / f"{bihar}.pem"
    assert rendered_ca.read_bytes() == ca.bundle_path.read_bytes()
    assert not (out.out / "keycloak" / "truststore" / f"{hub}.pem").exists()
    conf = (out.out / "keycloak/conf/keycloak.conf").read_text()
    assert "\ntruststore-paths=/opt/keycloak/truststore\n" in conf
    host = inventory_list(out, tmp_path)["_meta"]["hostvars"]["app.vm.example"]
    assert host["keycloak_truststore_dir"] == "/opt/keycloak/truststore"
    assert host["keycloak_truststore_files"] == [
        {
            "name": f"{bihar}.pem",
            "src": f"{{{{ inventory_dir }}}}/../keycloak/truststore/{bihar}.pem",
        }
    ]
