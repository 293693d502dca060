"""A provider's secret by reference: named in the spec, kept in the local store, read by the
realm through Keycloak's vault; a missing one stops `identity apply` before any write."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from identity.desired import VaultSecret
from infra.cli import app
from infra.errors import KitError
from infra.home import KitHome
from infra.spec import load_specs
from infra.targets.local.keycloak import LocalKeycloak
from infra.targets.local.render import LocalSecretStore, render_local
from infra.targets.local.runtime import check_vault_secrets
from tests.identity.test_reconciler import admin_api

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret-from-parichay-0f9e"
PARICHAY = """providers:
      - alias: parichay
        type: oidc
        displayName: Sign in with Parichay
        config:
          issuer: https://parichay.example/realms/parichay
          authorizationUrl: https://parichay.example/realms/parichay/protocol/openid-connect/auth
          tokenUrl: https://parichay.example/realms/parichay/protocol/openid-connect/token
          jwksUrl: https://parichay.example/realms/parichay/protocol/openid-connect/certs
          clientId: bihar-karmayogi
          clientSecret: {secret: parichay-client}
        mappers:
          - {source: department_code, value: HLTH, department: health}
          - {source: designation, attribute: post}"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The demo federation with Bihar connected to a Parichay-like SSO."""
    where = shutil.copytree(ROOT / "tenants", tmp_path / "tenants")
    spec = where / "bihar.yaml"
    text = spec.read_text(encoding="utf-8")
    assert text.count("providers: []") == 1
    spec.write_text(text.replace("providers: []", PARICHAY), encoding="utf-8")
    return where


def test_a_named_secret_validates_and_renders_as_a_vault_expression(
    folder: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(app, ["validate", str(folder)])
    assert result.exit_code == 0, result.output

    home = KitHome(tmp_path / "home", tmp_path / "cache")
    rendered = {r.code: r for r in render_local(load_specs([folder]), home, "http://127.0.0.1:1")}
    realm = rendered["bihar"].realm
    assert realm.providers[0].config["clientSecret"] == "${vault.parichay-client}"
    assert realm.vault == (VaultSecret("parichay-client"),)
    assert realm.vault[0].value is None  # the store does not hold it yet

    with pytest.raises(KitError) as refused:
        check_vault_secrets(tuple(rendered.values()))
    assert str(refused.value) == (
        f"{folder / 'bihar.yaml'}: spec.identity.providers[0].config.clientSecret: "
        "secret 'parichay-client' is not in the local secret store; add it with "
        "`karmayogi identity secret bihar parichay-client` (the value is read from standard input)"
    )


def test_identity_secret_keeps_the_value_from_stdin_and_never_prints_it(
    folder: Path, tmp_path: Path
) -> None:
    home = KitHome(tmp_path / "home", tmp_path / "cache")
    env = {"KARMAYOGI_HOME": str(home.root), "KARMAYOGI_CACHE": str(home.cache)}

    result = CliRunner().invoke(
        app, ["identity", "secret", "bihar", "parichay-client"], input=f"{SECRET}\n", env=env
    )

    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    store = LocalSecretStore(home)
    assert store.values("bihar")["parichay-client"] == SECRET
    assert store.path("bihar").stat().st_mode & 0o777 == 0o600
    rendered = render_local(load_specs([folder]), home, "http://127.0.0.1:1")
    check_vault_secrets(rendered)  # no longer refused
    bihar = next(r for r in rendered if r.code == "bihar")
    assert bihar.realm.vault[0].value == SECRET


def test_identity_secret_refuses_a_bad_name_and_an_empty_value(tmp_path: Path) -> None:
    env = {"KARMAYOGI_HOME": str(tmp_path / "home"), "KARMAYOGI_CACHE": str(tmp_path / "c")}
    bad = CliRunner().invoke(app, ["identity", "secret", "bihar", "Bad_Name"], input="x", env=env)
    assert bad.exit_code == 1
    assert bad.stderr.strip() == (
        "error: secret name 'Bad_Name': expected a-z, 0-9 and '-', as the spec names it"
    )
    empty = CliRunner().invoke(app, ["identity", "secret", "bihar", "sso"], input="\n", env=env)
    assert empty.exit_code == 1
    assert empty.stderr.strip() == "error: secret 'sso': the value on standard input is empty"


def test_apply_with_a_missing_secret_is_one_line_and_writes_nothing(
    keycloak: LocalKeycloak, kit_env: dict[str, str], folder: Path
) -> None:
    api = admin_api(keycloak)
    realms = api.get("", "realms")
    result = CliRunner().invoke(app, ["identity", "apply", "--tenants", str(folder)], env=kit_env)

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert "spec.identity.providers[0].config.clientSecret" in lines[0]
    assert "secret 'parichay-client' is not in the local secret store" in lines[0]
    # Other tests of the session may have applied the demo federation: nothing changed here.
    assert api.get("", "realms") == realms
    assert api.get("/bihar/identity-provider/instances/parichay", "idp") is None
    assert api.writes == 0
