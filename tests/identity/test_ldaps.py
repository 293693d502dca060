"""A state's directory over LDAPS, its certificate signed by a CA of the state's own: the spec
names the CA beside it, the local target hands it to Keycloak's truststore (restarting
Keycloak only when what it trusts changed), and an officer signs in through ldaps. A CA that
is missing or is no certificate stops apply in one line, before anything is written."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.cli import app
from infra.home import KitHome
from infra.spec import load_specs
from infra.targets.local.keycloak import LocalKeycloak
from infra.targets.local.render import LocalSecretStore, render_local
from tests.identity.browser import FlowError, sign_in
from tests.identity.test_providers import unverified_claims
from tests.identity.test_reconciler import admin_api, portal
from tests.ldap import GROUPS_DN, PEOPLE_DN, READER_DN, LdapServer, Officer, running_slapd
from tests.rig.ca import CertificateAuthority

ROOT = Path(__file__).resolve().parents[2]
OFFICER = Officer("kavita.rao", "Dir-pass-kavita-7", "kavita@state.example", "Tehsildar", ("home",))


@pytest.fixture(scope="module")
def state_ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority.create(
        tmp_path_factory.mktemp("state-ca"), common_name="State directory CA"
    )


@pytest.fixture(scope="module")
def directory(
    tmp_path_factory: pytest.TempPathFactory, state_ca: CertificateAuthority
) -> Iterator[LdapServer]:
    tls = state_ca.issue(["127.0.0.1", "localhost"])
    with running_slapd(tmp_path_factory.mktemp("slapd"), (OFFICER,), tls=tls) as server:
        yield server


def tenant_spec(code: str, url: str, ca: str | None) -> str:
    ca_line = f"        ca: {ca}\n" if ca is not None else ""
    return f"""apiVersion: karmayogi.dev/v1
kind: Tenant
metadata: {{code: {code}, name: State, type: state}}
spec:
  domain: learn.{code}.example
  languages: [en]
  branding:
    displayName: State Karmayogi
    logo: logo.svg
    colors: {{primary: "#8B1E3F", accent: "#F2A900"}}
  identity:
    adminOtp: optional
    departments:
      - {{code: home, name: Home Department}}
    providers:
      - alias: secretariat
        type: ldap
        displayName: Secretariat directory
{ca_line}        config:
          connectionUrl: {url}
          usersDn: {PEOPLE_DN}
          bindDn: {READER_DN}
          bindCredential: {{secret: ldap-reader}}
        mappers:
          - {{source: "{GROUPS_DN}", department: home}}
"""


@pytest.fixture
def folder(
    tmp_path: Path,
    kit_env: dict[str, str],
    directory: LdapServer,
    state_ca: CertificateAuthority,
    keycloak: LocalKeycloak,
) -> Iterator[Path]:
    """A state whose directory is reached over ldaps, its bind password in the store."""
    where = tmp_path / "tenants"
    where.mkdir()
    shutil.copyfile(ROOT / "tenants" / "branding" / "bihar.svg", where / "logo.svg")
    shutil.copyfile(state_ca.bundle_path, where / "directory-ca.pem")
    code = f"ldaps-{uuid.uuid4().hex[:8]}"
    (where / "state.yaml").write_text(tenant_spec(code, directory.ldaps_url, None))
    LocalSecretStore(KitHome.from_env(kit_env)).put(
        code, {"ldap-reader": directory.reader_password}
    )
    yield where
    args = ["identity", "destroy", code, "--tenants", str(where), "--yes"]
    assert CliRunner().invoke(app, args, env=kit_env).exit_code == 0


def apply(folder: Path, env: dict[str, str]) -> str:
    result = CliRunner().invoke(app, ["identity", "apply", "--tenants", str(folder)], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_an_officer_signs_in_through_ldaps_once_keycloak_trusts_the_state_s_ca(
    keycloak: LocalKeycloak, kit_env: dict[str, str], folder: Path, directory: LdapServer
) -> None:
    # Without the CA Keycloak refuses the directory's certificate: no sign-in.
    apply(folder, kit_env)
    (spec,) = load_specs([folder])
    home = KitHome.from_env(kit_env)
    (rendered,) = render_local([spec], home, keycloak.url)
    client = portal(keycloak, rendered.realm)
    with pytest.raises(FlowError):
        sign_in(client, OFFICER.uid, OFFICER.password)
    pid = keycloak.running_pid()

    # The spec names the CA beside it: apply hands it to Keycloak and restarts it once.
    spec_file = folder / "state.yaml"
    spec_file.write_text(tenant_spec(spec.code, directory.ldaps_url, "directory-ca.pem"))
    output = apply(folder, kit_env)

    assert "Keycloak restarted to trust the providers' new CAs." in output
    assert keycloak.running_pid() != pid
    trusted = keycloak.paths.truststore / f"{spec.code}.pem"
    assert trusted.read_bytes() == (folder / "directory-ca.pem").read_bytes()
    claims = unverified_claims(sign_in(client, OFFICER.uid, OFFICER.password)["access_token"])
    assert claims["groups"] == ["/departments/home"]
    ldap = next(
        c
        for c in admin_api(keycloak).get(
            f"/{spec.code}/components", "ldap", type="org.keycloak.storage.UserStorageProvider"
        )
        if c["name"] == "secretariat"
    )
    assert ldap["config"]["connectionUrl"] == [directory.ldaps_url]

    # Nothing new to trust: the next apply leaves Keycloak running.
    pid = keycloak.running_pid()
    assert "restarted" not in apply(folder, kit_env)
    assert keycloak.running_pid() == pid


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (
            None,
            "cannot read the CA of provider 'secretariat' at {path} (No such file or directory)",
        ),
        (b"not a certificate\n", "the CA of provider 'secretariat' at {path} holds no PEM"),
    ],
)
def test_a_missing_or_unreadable_ca_stops_apply_in_one_line_before_any_write(
    keycloak: LocalKeycloak,
    kit_env: dict[str, str],
    folder: Path,
    directory: LdapServer,
    content: bytes | None,
    reason: str,
) -> None:
    (spec,) = load_specs([folder])
    ca = folder / "directory-ca.pem"
    if content is None:
        ca.unlink()
    else:
        ca.write_bytes(content)
    (folder / "state.yaml").write_text(tenant_spec(spec.code, directory.ldaps_url, ca.name))
    pid = keycloak.running_pid()

    result = CliRunner().invoke(app, ["identity", "apply", "--tenants", str(folder)], env=kit_env)

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith(
        f"error: {folder / 'state.yaml'}: spec.identity.providers[0].ca: " + reason.format(path=ca)
    )
    assert admin_api(keycloak).get(f"/{spec.code}", "realm") is None
    assert not (keycloak.paths.truststore / f"{spec.code}.pem").exists()
    assert keycloak.running_pid() == pid


def test_a_ca_is_found_beside_the_spec_or_where_given_and_refused_for_saml(tmp_path: Path) -> None:
    folder = tmp_path / "tenants"
    folder.mkdir()
    shutil.copyfile(ROOT / "tenants" / "branding" / "bihar.svg", folder / "logo.svg")
    spec_file = folder / "state.yaml"
    spec_file.write_text(tenant_spec("ldaps-paths", "ldaps://127.0.0.1:1636", "certs/ca.pem"))
    (spec,) = load_specs([folder])
    provider = spec.spec.identity.providers[0]
    assert spec.provider_ca(provider) == folder / "certs" / "ca.pem"
    given = tmp_path / "elsewhere" / "ca.pem"
    spec_file.write_text(tenant_spec("ldaps-paths", "ldaps://127.0.0.1:1636", str(given)))
    (spec,) = load_specs([folder])
    assert spec.provider_ca(spec.spec.identity.providers[0]) == given

    saml = """      - alias: state-saml
        type: saml
        displayName: State SAML
        ca: certs/ca.pem
        config: {singleSignOnServiceUrl: "https://idp.example/sso", idpEntityId: state}
"""
    text = tenant_spec("ldaps-paths", "ldaps://127.0.0.1:1636", None)
    spec_file.write_text(text.replace("    providers:\n", "    providers:\n" + saml))
    result = CliRunner().invoke(app, ["validate", str(folder)])
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"{spec_file}:")
    assert "spec.identity.providers[0].ca: Keycloak opens no TLS connection to a SAML" in line
