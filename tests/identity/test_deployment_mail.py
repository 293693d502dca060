"""A deployment's default mail server (``deployment.yaml`` beside the tenant specs): a tenant
without ``identity.mail`` sends through it under its own name, a tenant with its own keeps
its own, and a bad default is refused in one line naming the file and the field."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.cli import app
from infra.errors import KitError
from infra.home import KitHome
from infra.spec import SpecError, load_specs
from infra.targets.local.keycloak import LocalKeycloak
from infra.targets.local.render import LocalSecretStore, render_local
from infra.targets.local.runtime import check_vault_secrets
from tests.identity.test_mail import SMTP_USER, Sink, sink  # noqa: F401
from tests.identity.test_reconciler import admin_api, create_user

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FROM = "karmayogi@mail.deployment.example"


def tenant_spec(code: str, display_name: str, mail: str = "") -> str:
    return f"""apiVersion: karmayogi.dev/v1
kind: Tenant
metadata: {{code: {code}, name: {display_name}, type: state}}
spec:
  domain: learn.{code}.example
  languages: [en, hi]
  branding:
    displayName: {display_name}
    logo: logo.svg
    colors: {{primary: "#8B1E3F", accent: "#F2A900"}}
  identity:
    adminOtp: optional
{mail}"""


def deployment_file(port: int, extra: str = "") -> str:
    return f"""apiVersion: karmayogi.dev/v1
kind: Deployment
spec:
  mail:
    host: 127.0.0.1
    port: {port}
    security: none
    from: {DEFAULT_FROM}
    replyTo: helpdesk@deployment.example
    user: {SMTP_USER}
    password: {{secret: smtp-password}}
{extra}"""


OWN_MAIL = """    mail:
      host: 127.0.0.1
      port: {port}
      security: none
      from: karmayogi@own.example
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Two states of one deployment: ``inherits`` names no mail server, ``owns`` its own."""
    where = tmp_path / "tenants"
    where.mkdir()
    (where / "logo.svg").write_bytes((ROOT / "tenants" / "branding" / "bihar.svg").read_bytes())
    suffix = uuid.uuid4().hex[:8]
    (where / "inherits.yaml").write_text(tenant_spec(f"inh-{suffix}", "Inheriting Karmayogi"))
    own = OWN_MAIL.format(port=2525)
    (where / "owns.yaml").write_text(tenant_spec(f"own-{suffix}", "Own Karmayogi", own))
    (where / "deployment.yaml").write_text(deployment_file(2526))
    return where


def test_a_tenant_without_mail_renders_the_deployment_default_under_its_own_name(
    folder: Path, tmp_path: Path
) -> None:
    home = KitHome(tmp_path / "home", tmp_path / "cache")
    specs = load_specs([folder])
    assert sorted(s.code.split("-")[0] for s in specs) == ["inh", "own"]  # not a tenant
    realms = {r.code.split("-")[0]: r.realm for r in render_local(specs, home, "http://x:1")}

    inherited = realms["inh"].mail
    assert inherited is not None
    assert (inherited.host, inherited.port, inherited.security) == ("127.0.0.1", 2526, "none")
    assert (inherited.from_address, inherited.from_name) == (DEFAULT_FROM, "Inheriting Karmayogi")
    assert inherited.user == SMTP_USER
    assert inherited.password == "${vault.smtp-password}"
    assert [s.name for s in realms["inh"].vault] == ["smtp-password"]

    own = realms["own"].mail
    assert own is not None
    assert (own.port, own.from_address, own.user, own.password) == (
        2525,
        "karmayogi@own.example",
        None,
        None,
    )
    assert realms["own"].vault == ()


def test_a_named_file_inherits_the_default_beside_it(folder: Path, tmp_path: Path) -> None:
    (spec,) = load_specs([folder / "inherits.yaml"])
    assert spec.mail is not None and spec.mail.port == 2526


@pytest.mark.parametrize(
    ("port", "extra", "field", "message"),
    [
        (25, "    fromName: All\n", "spec.mail.fromName", "each tenant's e-mails carry its own"),
        (25, "    colour: blue\n", "spec.mail.colour", "unknown field 'colour'"),
        (70000, "", "spec.mail.port", "Input should be less than or equal to 65535"),
    ],
)
def test_a_bad_default_is_one_line_naming_the_file_and_the_field(
    folder: Path, port: int, extra: str, field: str, message: str
) -> None:
    (folder / "deployment.yaml").write_text(deployment_file(port, extra))

    result = CliRunner().invoke(app, ["validate", str(folder)])

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{folder / 'deployment.yaml'}:")
    assert f": {field}: {message}" in lines[0]


def test_a_default_with_a_literal_password_is_refused_without_showing_it(folder: Path) -> None:
    text = deployment_file(2526).replace("{secret: smtp-password}", "hunter2")
    (folder / "deployment.yaml").write_text(text)

    with pytest.raises(SpecError) as refused:
        load_specs([folder])

    (problem,) = refused.value.problems
    assert (problem.file.name, problem.field) == ("deployment.yaml", "spec.mail.password")
    assert "name it as {secret: <name>}" in problem.message
    assert "hunter2" not in str(refused.value)


def test_the_default_password_missing_from_the_store_names_the_deployment_file(
    folder: Path, tmp_path: Path
) -> None:
    home = KitHome(tmp_path / "home", tmp_path / "cache")
    rendered = render_local(load_specs([folder]), home, "http://127.0.0.1:1")
    code = next(r.code for r in rendered if r.code.startswith("inh-"))

    with pytest.raises(KitError) as refused:
        check_vault_secrets(rendered)

    assert str(refused.value) == (
        f"{folder / 'deployment.yaml'}: spec.mail.password: secret 'smtp-password' is "
        f"not in the local secret store; add it with `karmayogi identity secret {code} "
        "smtp-password` (the value is read from standard input)"
    )


@pytest.fixture
def applied(
    keycloak: LocalKeycloak,
    kit_env: dict[str, str],
    folder: Path,
    sink: Sink,  # noqa: F811
) -> Iterator[dict[str, str]]:
    """The folder, pointed at the test's SMTP sink, applied to the session's Keycloak."""
    (folder / "deployment.yaml").write_text(deployment_file(sink.port))
    own = OWN_MAIL.format(port=sink.port)
    owns = folder / "owns.yaml"
    owns.write_text(owns.read_text().replace(OWN_MAIL.format(port=2525), own))
    codes = {s.code.split("-")[0]: s.code for s in load_specs([folder])}
    store = LocalSecretStore(KitHome.from_env(kit_env))
    store.put(codes["inh"], {"smtp-password": sink.password})
    runner = CliRunner()
    result = runner.invoke(app, ["identity", "apply", "--tenants", str(folder)], env=kit_env)
    assert result.exit_code == 0, result.output
    yield codes
    args = ["identity", "destroy", *codes.values(), "--tenants", str(folder), "--yes"]
    assert runner.invoke(app, args, env=kit_env).exit_code == 0


def test_keycloak_sends_through_the_default_or_the_tenant_s_own_server(
    keycloak: LocalKeycloak,
    kit_env: dict[str, str],
    folder: Path,
    applied: dict[str, str],
    sink: Sink,  # noqa: F811
) -> None:
    api = admin_api(keycloak)
    inherits, owns = applied["inh"], applied["own"]
    smtp = api.get(f"/{inherits}", "realm")["smtpServer"]
    assert (smtp["host"], smtp["port"], smtp["from"]) == ("127.0.0.1", str(sink.port), DEFAULT_FROM)
    assert smtp["password"] == "${vault.smtp-password}"
    assert smtp["fromDisplayName"] == "Inheriting Karmayogi"
    assert api.get(f"/{owns}", "realm")["smtpServer"]["from"] == "karmayogi@own.example"

    # Keycloak sends a required-action e-mail from each realm, through the server it was given:
    # the default's needs its password, read from the vault (the sink refuses a wrong one).
    for code, username in ((inherits, "ravi.inherits"), (owns, "ravi.owns")):
        user = create_user(api, code, username)
        api.put(f"/{code}/users/{user}/execute-actions-email", ["UPDATE_PASSWORD"], "send mail")
    inherited = sink.next_message("ravi.inherits@example.org")
    assert str(inherited["From"]) == f"Inheriting Karmayogi <{DEFAULT_FROM}>"
    assert "helpdesk@deployment.example" in str(inherited["Reply-To"])
    assert str(sink.next_message("ravi.owns@example.org")["From"]) == (
        "Own Karmayogi <karmayogi@own.example>"
    )

    # Applying again changes nothing: the inherited server is reconciled like any other.
    again = CliRunner().invoke(app, ["identity", "drift", "--tenants", str(folder)], env=kit_env)
    assert again.exit_code == 0, again.output
