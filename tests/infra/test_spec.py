"""The tenant spec: the demo federation loads, and every broken spec says where and why."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner, Result

from infra.cli import app
from infra.errors import KitError
from infra.spec import (
    Problem,
    SpecError,
    TenantSpec,
    json_schema,
    load_spec,
    load_specs,
)
from infra.spec.languages import LANGUAGES, SCHEDULED_LANGUAGES

ROOT = Path(__file__).resolve().parents[2]
TENANTS = ROOT / "tenants"
DEMO = {
    "bihar": "state",
    "karmayogi-bharat": "hub",
    "mauritius": "country",
    "rajasthan": "state",
}
KNOWN = ", ".join(LANGUAGES)
SLUG_RULE = (
    "characters of a-z, 0-9 and '-', starting with a letter and ending with a letter or digit"
)

runner = CliRunner()


def validate(*paths: Path | str) -> Result:
    return runner.invoke(app, ["validate", *map(str, paths)])


def copy_demo(where: Path) -> Path:
    """A copy of the demo federation (specs and logos) to break."""
    shutil.copytree(TENANTS, where)
    return where


def edit(file: Path, old: str, new: str) -> Path:
    text = file.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not once in {file}"
    file.write_text(text.replace(old, new), encoding="utf-8")
    return file


def line(file: Path, needle: str) -> int:
    """The line (from 1) of the only line of `file` containing `needle`."""
    lines = file.read_bytes().decode("utf-8", "replace").splitlines()
    found = [number for number, text in enumerate(lines, start=1) if needle in text]
    assert len(found) == 1, f"{needle!r} is on lines {found} of {file}"
    return found[0]


# --- Broken specs: each case breaks one thing in a copy of the demo folder and returns the
# --- paths to validate and the exact lines the CLI must print on stderr.

Case = Callable[[Path], tuple[list[Path], list[str]]]
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    def register(function: Case) -> Case:
        CASES[name] = function
        return function

    return register


@case("yaml-syntax")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "languages: [hi, en, mai]", "languages: [hi, en, mai")
    n, opened = line(f, "  branding:"), line(f, "  languages:")
    message = (
        "invalid YAML: expected ',' or ']', but got ':' "
        f"(while parsing a flow sequence on line {opened})"
    )
    return [demo], [f"{f}:{n}: {message}"]


@case("duplicate-key")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "  name: Bihar\n", "  name: Bihar\n  name: Bihar State\n")
    second = line(f, "name: Bihar State")
    first = second - 1
    return [demo], [f"{f}:{second}: metadata.name: duplicate key 'name' (first on line {first})"]


@case("top-level-list")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = demo / "bihar.yaml"
    f.write_text("# a list is not a spec\n- apiVersion: karmayogi.dev/v1\n- kind: Tenant\n")
    expected = "expected a mapping with apiVersion, kind, metadata and spec, got a list"
    return [demo], [f"{f}:2: {expected}"]


@case("empty-file")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = demo / "bihar.yaml"
    f.write_text("# nothing yet\n")
    return [demo], [f"{f}: empty file; expected a tenant spec"]


@case("two-documents")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "kind: Tenant\n", "kind: Tenant\n---\nkind: Tenant\n")
    n = line(f, "---") + 1
    return [demo], [f"{f}:{n}: one tenant per file; a second document starts here"]


@case("not-utf-8")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = demo / "bihar.yaml"
    f.write_bytes(f.read_bytes().replace(b"name: Bihar\n", b"name: Bih\xe2r\n"))
    n = line(f, "name: Bih")
    return [demo], [f"{f}:{n}: not valid UTF-8 (byte 0xe2); save the file as UTF-8"]


@case("languages-not-a-list")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "languages: [hi, en, mai]", "languages: hi")
    return [demo], [f"{f}:{line(f, '  languages:')}: spec.languages: expected a list, got 'hi'"]


@case("unknown-language")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "languages: [hi, en, mai]", "languages: [hi, en,\n    xx]")
    n = line(f, "xx]")
    return [demo], [f"{f}:{n}: spec.languages[2]: unknown language 'xx'; known: {KNOWN}"]


@case("duplicate-language")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "languages: [hi, en, mai]", "languages: [hi, en, hi]")
    edit(f, ", mai: बिहार सरकार}", "}")
    message = "language 'hi' is listed twice (first at spec.languages[0])"
    return [demo], [f"{f}:{line(f, '  languages:')}: spec.languages[2]: {message}"]


@case("duplicate-language-in-the-hub")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    # The hub subscribes to its own languages by default: the duplicate is still told once.
    f = edit(demo / "karmayogi-bharat.yaml", "[hi, en, bn,", "[hi, en, hi,")
    message = "language 'hi' is listed twice (first at spec.languages[0])"
    return [demo], [f"{f}:{line(f, '  languages:')}: spec.languages[2]: {message}"]


@case("no-languages")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "languages: [hi, en, mai]", "languages: []")
    return [demo], [f"{f}:{line(f, '  languages:')}: spec.languages: must not be empty"]


@case("unknown-field")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "    colors:", "    colours:")
    unknown = (
        "unknown field 'colours'; expected one of displayName, provider, logo, colors "
        "(did you mean 'colors'?)"
    )
    return [demo], [
        f"{f}:{line(f, 'branding:')}: spec.branding.colors: required field is missing",
        f"{f}:{line(f, 'colours:')}: spec.branding.colours: {unknown}",
    ]


@case("snake-case-key")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "brokerToHub: true", "broker_to_hub: true")
    unknown = (
        "unknown field 'broker_to_hub'; expected one of brokerToHub, adminOtp, loginDomain, "
        "providers, departments, mail (did you mean 'brokerToHub'?)"
    )
    return [demo], [f"{f}:{line(f, 'broker_to_hub')}: spec.identity.broker_to_hub: {unknown}"]


@case("missing-field")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "  domain: learn.bihar.example\n", "")
    return [demo], [f"{f}:{line(f, 'spec:')}: spec.domain: required field is missing"]


@case("null-section")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "  deployment:\n    target: local\n", "  deployment:\n")
    f = edit(f, "    size: small\n", "")
    n = line(f, "deployment:")
    return [demo], [f"{f}:{n}: spec.deployment: expected a mapping, got nothing (null)"]


@case("bad-code")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "code: bihar", "code: Bihar_State")
    message = f"expected 3-32 {SLUG_RULE}, got 'Bihar_State'"
    return [demo], [f"{f}:{line(f, 'code: Bihar')}: metadata.code: {message}"]


@case("reserved-code")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "code: bihar", "code: master")
    message = "'master' is reserved (it is Keycloak's administration realm); choose another code"
    return [demo], [f"{f}:{line(f, 'code: master')}: metadata.code: {message}"]


@case("bad-type")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "type: state", "type: province")
    message = "expected one of hub, state, country, got 'province'"
    return [demo], [f"{f}:{line(f, 'type:')}: metadata.type: {message}"]


@case("bad-kind-and-version")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "apiVersion: karmayogi.dev/v1", "apiVersion: v1")
    f = edit(f, "kind: Tenant", "kind: Tenants")
    return [demo], [
        f"{f}:{line(f, 'apiVersion')}: apiVersion: expected karmayogi.dev/v1, got 'v1'",
        f"{f}:{line(f, 'kind:')}: kind: expected Tenant, got 'Tenants'",
    ]


@case("bad-colour")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", '"#8B1E3F"', '"#8B1E3"')
    message = "expected a colour as #RRGGBB or #RGB, got '#8B1E3'"
    return [demo], [f"{f}:{line(f, 'colors:')}: spec.branding.colors.primary: {message}"]


@case("missing-logo")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    (demo / "branding" / "bihar.svg").unlink()
    f = demo / "bihar.yaml"
    message = (
        "no such file 'branding/bihar.svg' beside this spec "
        f"(looked for {demo / 'branding' / 'bihar.svg'})"
    )
    return [demo], [f"{f}:{line(f, 'logo:')}: spec.branding.logo: {message}"]


@case("logo-not-svg-or-png")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "logo: branding/bihar.svg", "logo: branding/bihar.jpg")
    message = "expected an .svg or .png file, got 'branding/bihar.jpg'"
    return [demo], [f"{f}:{line(f, 'logo:')}: spec.branding.logo: {message}"]


@case("bad-domain")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "domain: learn.bihar.example", "domain: https://learn.bihar/")
    message = (
        "expected a hostname such as learn.bihar.example (no scheme, port or path), "
        "got 'https://learn.bihar/'"
    )
    return [demo], [f"{f}:{line(f, 'domain:')}: spec.domain: {message}"]


@case("not-a-boolean")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "brokerToHub: true", "brokerToHub: yes")
    message = "expected true or false, got 'yes'"
    return [demo], [f"{f}:{line(f, 'brokerToHub')}: spec.identity.brokerToHub: {message}"]


@case("bad-admin-otp")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "adminOtp: required", "adminOtp: sometimes")
    message = "expected one of required, optional, got 'sometimes'"
    return [demo], [f"{f}:{line(f, 'adminOtp')}: spec.identity.adminOtp: {message}"]


@case("duplicate-code")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    text = (demo / "bihar.yaml").read_text().replace("learn.bihar", "learn2.bihar")
    f = demo / "zz-bihar.yaml"
    f.write_text(text)
    message = f"code 'bihar' is already used by {demo / 'bihar.yaml'}"
    return [demo], [f"{f}:{line(f, 'code: bihar')}: metadata.code: {message}"]


@case("duplicate-domain")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "rajasthan.yaml", "learn.rajasthan.example", "learn.bihar.example")
    message = f"domain 'learn.bihar.example' is already used by {demo / 'bihar.yaml'}"
    return [demo], [f"{f}:{line(f, 'domain:')}: spec.domain: {message}"]


@case("two-hubs")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    text = (demo / "karmayogi-bharat.yaml").read_text()
    text = text.replace("code: karmayogi-bharat", "code: second-hub")
    f = demo / "zz-hub.yaml"
    f.write_text(text.replace("learn.karmayogi.example", "learn.second-hub.example"))
    message = f"a second hub; {demo / 'karmayogi-bharat.yaml'} is already the hub here"
    return [demo], [f"{f}:{line(f, 'type: hub')}: metadata.type: {message}"]


@case("hub-unknown-code")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "hub: karmayogi-bharat", "hub: karmayogi-india")
    message = "no hub 'karmayogi-india' here; the hub here is 'karmayogi-bharat'"
    return [demo], [f"{f}:{line(f, 'hub:')}: spec.federation.hub: {message}"]


@case("hub-names-a-state")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "hub: karmayogi-bharat", "hub: rajasthan")
    message = (
        f"'rajasthan' ({demo / 'rajasthan.yaml'}) is a state, not the hub; "
        "the hub here is 'karmayogi-bharat'"
    )
    return [demo], [f"{f}:{line(f, 'hub:')}: spec.federation.hub: {message}"]


@case("hub-code-without-hub-spec")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    (demo / "karmayogi-bharat.yaml").unlink()
    message = (
        "no hub spec 'karmayogi-bharat' beside this one; when someone else runs the hub, "
        "write {code: karmayogi-bharat, url: https://…}"
    )
    return [demo], [
        f"{f}:{line(f, 'hub:')}: spec.federation.hub: {message}"
        for f in (demo / "bihar.yaml", demo / "mauritius.yaml", demo / "rajasthan.yaml")
    ]


@case("broker-without-hub")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "    hub: karmayogi-bharat\n", "")
    return [demo], [
        f"{f}:{line(f, 'brokerToHub')}: spec.identity.brokerToHub: "
        "brokering needs a hub; set spec.federation.hub",
        f"{f}:{line(f, 'publish:')}: spec.federation.publish: "
        "publishing needs a hub; set spec.federation.hub",
    ]


@case("hub-with-a-hub")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(
        demo / "karmayogi-bharat.yaml",
        "  deployment:",
        "  federation:\n    hub: {code: world-hub, url: https://hub.world.example}\n  deployment:",
    )
    message = "a hub does not federate with another hub; remove federation.hub"
    return [demo], [f"{f}:{line(f, '    hub:')}: spec.federation.hub: {message}"]


@case("hub-url-http")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(
        demo / "mauritius.yaml",
        "hub: karmayogi-bharat",
        "hub:\n      code: karmayogi-bharat\n      url: http://learn.karmayogi.example",
    )
    message = (
        "expected an https:// URL such as https://learn.karmayogi.example, "
        "got 'http://learn.karmayogi.example'"
    )
    return [demo], [f"{f}:{line(f, 'url:')}: spec.federation.hub.url: {message}"]


@case("hub-url-not-a-url")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(
        demo / "mauritius.yaml",
        "hub: karmayogi-bharat",
        "hub:\n      code: karmayogi-bharat\n      url: the national hub",
    )
    message = (
        "expected an https:// URL such as https://learn.karmayogi.example, got 'the national hub'"
    )
    return [demo], [f"{f}:{line(f, 'url:')}: spec.federation.hub.url: {message}"]


@case("hub-url-not-the-hub-here")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(
        demo / "mauritius.yaml",
        "hub: karmayogi-bharat",
        "hub:\n      code: karmayogi-bharat\n      url: https://elsewhere.example",
    )
    message = (
        f"hub 'karmayogi-bharat' in {demo / 'karmayogi-bharat.yaml'} is at "
        "https://learn.karmayogi.example, not https://elsewhere.example"
    )
    return [demo], [f"{f}:{line(f, 'url:')}: spec.federation.hub.url: {message}"]


@case("hub-wrong-form")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "mauritius.yaml", "hub: karmayogi-bharat", "hub: [karmayogi-bharat]")
    message = "expected a hub code, or a mapping with code and url, got a list"
    return [demo], [f"{f}:{line(f, 'hub:')}: spec.federation.hub: {message}"]


@case("hub-mapping-missing-url")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "mauritius.yaml", "hub: karmayogi-bharat", "hub: {code: Karmayogi}")
    n = line(f, "hub:")
    return [demo], [
        f"{f}:{n}: spec.federation.hub.code: expected 3-32 {SLUG_RULE}, got 'Karmayogi'",
        f"{f}:{n}: spec.federation.hub.url: required field is missing",
    ]


@case("bad-department-code")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "{code: health,", "{code: Health,")
    message = f"expected 2-32 {SLUG_RULE}, got 'Health'"
    return [demo], [f"{f}:{line(f, 'Health Dep')}: spec.identity.departments[0].code: {message}"]


@case("duplicate-department")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "{code: education,", "{code: health,")
    message = (
        "department code 'health' is listed twice (first at spec.identity.departments[0].code)"
    )
    n = line(f, "Education Department")
    return [demo], [f"{f}:{n}: spec.identity.departments[2].code: {message}"]


@case("provider-secret-and-duplicate-alias")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(
        demo / "bihar.yaml",
        "providers: []",
        "providers:\n"
        "      - alias: bihar-ad\n"
        "        type: ldap\n"
        "        displayName: Bihar Secretariat directory\n"
        "        config: {connectionUrl: 'ldaps://ad.bihar.example', usersDn: 'dc=bihar',\n"
        "                 bindCredential: hunter2}\n"
        "      - alias:  bihar-ad\n"
        "        type: saml\n"
        "        displayName: e-Pramaan\n"
        "        config: {singleSignOnServiceUrl: 'https://sso.example', idpEntityId: x}",
    )
    return [demo], [
        f"{f}:{line(f, 'bindCredential')}: "
        "spec.identity.providers[0].config.bindCredential: "
        "looks like a secret; secrets are kept outside the spec, never in it: "
        "name it as {secret: <name>} and put its value in the secret store",
        f"{f}:{line(f, 'alias:  bihar-ad')}: spec.identity.providers[1].alias: "
        "alias 'bihar-ad' is listed twice (first at spec.identity.providers[0].alias)",
    ]


@case("provider-missing-settings-and-misplaced-secret")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(
        demo / "bihar.yaml",
        "providers: []",
        "providers:\n"
        "      - alias: parichay\n"
        "        type: oidc\n"
        "        displayName: Parichay\n"
        "        config: {clientId: bihar, issuer: {secret: parichay-issuer}}",
    )
    return [demo], [
        f"{f}:{line(f, 'parichay-issuer')}: spec.identity.providers[0].config.issuer: "
        "Keycloak reads this oidc provider's secrets from its vault only in clientSecret",
        f"{f}:{line(f, 'clientId: bihar')}: spec.identity.providers[0].config: "
        "this oidc provider needs clientSecret, authorizationUrl, tokenUrl, jwksUrl",
    ]


@case("provider-mapper-unknown-department-and-role")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(
        demo / "bihar.yaml",
        "providers: []",
        "providers:\n"
        "      - alias: parichay\n"
        "        type: saml\n"
        "        displayName: Parichay\n"
        "        config: {singleSignOnServiceUrl: 'https://sso.example', idpEntityId: x}\n"
        "        mappers:\n"
        "          - {source: dept, value: MINES, department: mining}\n"
        "          - {source: desig, value: DM, role: collector}\n"
        "          - {source: desig, attribute: post}",
    )
    return [demo], [
        f"{f}:{line(f, 'MINES')}: spec.identity.providers[0].mappers[0].department: "
        "unknown department 'mining'; known: agriculture, education, finance, health, home, "
        "panchayati-raj, rural-development",
        f"{f}:{line(f, 'collector')}: spec.identity.providers[0].mappers[1].role: "
        "unknown role 'collector'; known: learner, content_creator, content_reviewer, "
        "content_publisher, mdo_admin, tenant_admin",
    ]


@case("provider-alias-of-the-hub")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(
        demo / "bihar.yaml",
        "providers: []",
        "providers:\n"
        "      - alias: karmayogi-bharat\n"
        "        type: saml\n"
        "        displayName: Not the hub\n"
        "        config: {singleSignOnServiceUrl: 'https://sso.example', idpEntityId: x}",
    )
    return [demo], [
        f"{f}:{line(f, 'alias: karmayogi-bharat')}: spec.identity.providers[0].alias: "
        "alias 'karmayogi-bharat' is the hub's sign-in (brokerToHub); choose another",
    ]


@case("secret-name-escaping-the-vault")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    # The name becomes a file name in Keycloak's vault folder: a path is refused.
    f = edit(
        demo / "bihar.yaml",
        "providers: []",
        "providers:\n"
        "      - alias: secretariat\n"
        "        type: ldap\n"
        "        displayName: Secretariat\n"
        "        config: {connectionUrl: 'ldap://ldap.bihar.example', usersDn: 'dc=bihar',\n"
        "                 bindCredential: {secret: ../../etc/shadow}}",
    )
    return [demo], [
        f"{f}:{line(f, 'shadow')}: spec.identity.providers[0].config.bindCredential.secret: "
        f"expected 2-32 {SLUG_RULE}, got '../../etc/shadow'",
    ]


@case("mail-literal-password-and-ldap-group-renamed")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(
        demo / "bihar.yaml",
        "providers: []",
        "providers:\n"
        "      - alias: secretariat\n"
        "        type: ldap\n"
        "        displayName: Secretariat\n"
        "        config: {connectionUrl: 'ldap://ldap.bihar.example', usersDn: 'dc=bihar',\n"
        "                 bindCredential: {secret: ldap-reader}}\n"
        "        mappers:\n"
        "          - {source: 'ou=groups,dc=bihar', value: health-staff, department: health}\n"
        "    mail: {host: smtp.bihar.example, from: karmayogi@bihar.example,\n"
        "           password: hunter2}",
    )
    return [demo], [
        f"{f}:{line(f, 'health-staff')}: spec.identity.providers[0].mappers[0].value: "
        "Keycloak takes a directory group's cn as the department's code: name the group "
        "cn=health in ou=groups,dc=bihar, and leave out value",
        f"{f}:{line(f, 'hunter2')}: spec.identity.mail.password: a secret is kept outside the "
        "spec, never in it: name it as {secret: <name>} and put its value in the secret store",
        f"{f}:{line(f, 'hunter2')}: spec.identity.mail.password: "
        "a password needs a user; set mail.user",
    ]


@case("provider-bad-type-and-unquoted-number")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(
        demo / "bihar.yaml",
        "providers: []",
        "providers:\n"
        "      - {alias: bihar-sso, type: kerberos, displayName: Bihar SSO,\n"
        "         config: {timeout: 30}}",
    )
    return [demo], [
        f"{f}:{line(f, 'kerberos')}: spec.identity.providers[0].type: "
        "expected one of oidc, saml, ldap, got 'kerberos'",
        f"{f}:{line(f, 'timeout')}: spec.identity.providers[0].config.timeout: "
        "expected text (put it in quotes) or a secret's name as {secret: <name>}, got 30",
    ]


@case("provider-names-outside-the-tenants-languages-or-empty")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    r = edit(demo / "rajasthan.yaml", "en: Government of Rajasthan}", "fr: Rajasthan}")
    m = edit(demo / "mauritius.yaml", "fr: Gouvernement de Maurice}", 'fr: " "}')
    return [demo], [
        f"{m}:{line(m, 'provider:')}: spec.branding.provider.fr: must not be empty",
        f"{r}:{line(r, 'provider:')}: spec.branding.provider.fr: "
        "'fr' is not one of this tenant's languages (hi, en)",
    ]


@case("bad-competency-area")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    f = edit(demo / "bihar.yaml", "competencyAreas: [behavioural", "competencyAreas: [behavioral")
    message = "expected one of behavioural, functional, domain, got 'behavioral'"
    n = line(f, "competencyAreas")
    return [demo], [f"{f}:{n}: spec.federation.subscribe.competencyAreas[0]: {message}"]


@case("problems-in-several-files")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    b = edit(demo / "bihar.yaml", "languages: [hi, en, mai]", "languages: [hi, en, mai, xx]")
    m = edit(demo / "mauritius.yaml", '"#00A05A"', '"green"')
    r = edit(demo / "rajasthan.yaml", "size: small", "size: huge")
    return [demo], [
        f"{b}:{line(b, '  languages:')}: spec.languages[3]: unknown language 'xx'; known: {KNOWN}",
        f"{m}:{line(m, 'colors:')}: spec.branding.colors.accent: "
        "expected a colour as #RRGGBB or #RGB, got 'green'",
        f"{r}:{line(r, 'size:')}: spec.deployment.size: "
        "expected one of small, medium, large, got 'huge'",
    ]


@case("empty-folder")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    empty = demo / "empty"
    empty.mkdir()
    return [empty], [f"{empty}: no tenant spec here (expected *.yaml or *.yml files)"]


@case("no-such-path")
def _(demo: Path) -> tuple[list[Path], list[str]]:
    missing = demo / "punjab.yaml"
    return [demo / "bihar.yaml", missing], [f"{missing}: no such file or folder"]


def test_there_are_enough_broken_spec_cases() -> None:
    assert len(CASES) >= 18


@pytest.mark.parametrize("name", list(CASES))
def test_broken_spec_is_reported_by_file_line_and_field(name: str, tmp_path: Path) -> None:
    paths, expected = CASES[name](copy_demo(tmp_path / "tenants"))

    result = validate(*paths)

    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == expected


# --- The demo federation ------------------------------------------------------------------


def test_demo_folder_validates_with_one_ok_line_a_tenant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)

    result = validate("tenants/")

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        f"ok tenants/{code}.yaml: {code} ({kind})" for code, kind in DEMO.items()
    ]


def test_validate_defaults_to_the_tenants_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)

    result = runner.invoke(app, ["validate"])

    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == len(DEMO)


def test_a_state_validated_alone_finds_its_hub_beside_it() -> None:
    result = validate(TENANTS / "bihar.yaml")

    assert result.exit_code == 0, result.output
    assert result.stdout == f"ok {TENANTS / 'bihar.yaml'}: bihar (state)\n"
    [bihar] = load_specs([TENANTS / "bihar.yaml"])
    assert bihar.hub_url == "https://learn.karmayogi.example"


def test_demo_specs_load_with_their_conveniences() -> None:
    specs = {spec.code: spec for spec in load_specs([TENANTS])}

    assert list(specs) == list(DEMO)
    hub, bihar, mauritius = specs["karmayogi-bharat"], specs["bihar"], specs["mauritius"]
    assert hub.is_hub and not bihar.is_hub
    assert hub.hub_code is None and hub.hub_url is None
    assert bihar.hub_code == "karmayogi-bharat"
    assert bihar.hub_url == "https://learn.karmayogi.example"
    assert bihar.source == TENANTS / "bihar.yaml"
    assert bihar.logo_path == TENANTS / "branding" / "bihar.svg"
    assert bihar.logo_path.is_absolute()
    assert bihar.spec.languages == ["hi", "en", "mai"]
    assert bihar.spec.branding.colors.primary == "#8b1e3f"
    assert bihar.spec.identity.broker_to_hub and bihar.spec.federation.publish
    assert 5 <= len(bihar.spec.identity.departments) <= 8
    assert not mauritius.spec.identity.broker_to_hub
    assert mauritius.spec.federation.subscribe.languages == ["en"]
    for spec in specs.values():
        assert spec.logo_path.stat().st_size < 4096
        assert spec.spec.domain.endswith(".example")


def test_a_plain_provider_name_is_the_tenants_first_language(tmp_path: Path) -> None:
    demo = copy_demo(tmp_path / "tenants")
    edit(
        demo / "bihar.yaml",
        "provider: {hi: बिहार सरकार, en: Government of Bihar, mai: बिहार सरकार}",
        "provider: Bihar Institute of Public Administration",
    )
    assert load_spec(demo / "bihar.yaml").spec.branding.provider == {
        "hi": "Bihar Institute of Public Administration"
    }
    assert load_spec(TENANTS / "bihar.yaml").spec.branding.provider["en"] == "Government of Bihar"


def test_load_spec_checks_one_file_alone() -> None:
    bihar = load_spec(TENANTS / "bihar.yaml")

    assert bihar.code == "bihar"
    assert bihar.hub_code == "karmayogi-bharat"
    assert bihar.hub_url is None  # a plain code is looked up by load_specs only


def test_load_spec_raises_spec_error_with_problems(tmp_path: Path) -> None:
    f = tmp_path / "bihar.yaml"
    f.write_text("apiVersion: karmayogi.dev/v1\nkind: Tenant\n")

    with pytest.raises(SpecError) as raised:
        load_spec(f)

    assert isinstance(raised.value, KitError)
    assert [(p.line, p.field) for p in raised.value.problems] == [(1, "metadata"), (1, "spec")]
    assert str(raised.value) == "\n".join(str(p) for p in raised.value.problems)


def test_defaults_fill_what_a_spec_leaves_out(tmp_path: Path) -> None:
    shutil.copytree(TENANTS / "branding", tmp_path / "branding")
    f = tmp_path / "goa.yaml"
    f.write_text(
        "apiVersion: karmayogi.dev/v1\n"
        "kind: Tenant\n"
        "metadata: {code: goa, name: Goa, type: state}\n"
        "spec:\n"
        "  domain: Learn.Goa.Example\n"
        "  languages: [KOK, en]\n"
        "  branding:\n"
        "    displayName: Goa Karmayogi\n"
        "    logo: branding/bihar.svg\n"
        "    colors: {primary: '#0A5', accent: '#FfAa00'}\n"
        "  federation: {hub: {code: karmayogi-bharat, url: 'https://learn.karmayogi.example/'}}\n"
    )

    goa = load_spec(f)

    assert goa.spec.domain == "learn.goa.example"
    assert goa.spec.languages == ["kok", "en"]
    assert goa.spec.branding.colors.primary == "#00aa55"
    assert goa.spec.branding.colors.accent == "#ffaa00"
    assert goa.spec.identity.broker_to_hub is False
    assert goa.spec.identity.admin_otp == "required"
    assert goa.spec.identity.departments == []
    assert goa.spec.federation.subscribe.languages == ["kok", "en"]
    assert goa.spec.federation.subscribe.competency_areas == ["behavioural", "functional", "domain"]
    assert goa.spec.federation.publish is False
    assert (goa.spec.deployment.target, goa.spec.deployment.size) == ("local", "small")
    assert (goa.hub_code, goa.hub_url) == ("karmayogi-bharat", "https://learn.karmayogi.example")


def _python_spec(**identity: Any) -> dict[str, Any]:
    return {
        "api_version": "karmayogi.dev/v1",
        "kind": "Tenant",
        "metadata": {"code": "kerala", "name": "Kerala", "type": "state"},
        "spec": {
            "domain": "learn.kerala.example",
            "languages": ["ml", "en"],
            "branding": {
                "display_name": "Kerala Karmayogi",
                "logo": "branding/kerala.svg",
                "colors": {"primary": "#116644", "accent": "#ddaa00"},
            },
            "identity": identity,
        },
    }


def test_a_spec_built_in_python_takes_snake_case_names() -> None:
    spec = TenantSpec.model_validate(_python_spec(admin_otp="optional"))

    assert spec.spec.identity.admin_otp == "optional"
    assert spec.model_dump(by_alias=True)["apiVersion"] == "karmayogi.dev/v1"
    with pytest.raises(KitError, match="not loaded from a file"):
        _ = spec.source


def test_a_spec_built_in_python_obeys_the_rules_between_fields() -> None:
    expected = r"spec\.identity\.brokerToHub: brokering needs a hub"
    with pytest.raises(ValidationError, match=expected):
        TenantSpec.model_validate(_python_spec(broker_to_hub=True))


def test_load_specs_of_nothing_is_an_error() -> None:
    with pytest.raises(SpecError, match="no spec file or folder given"):
        load_specs([])


def test_problem_reads_as_one_line_in_four_shapes() -> None:
    f = Path("tenants/bihar.yaml")

    assert str(Problem(f, 7, "spec.languages[2]", "bad")) == f"{f}:7: spec.languages[2]: bad"
    assert str(Problem(f, 7, "", "bad")) == f"{f}:7: bad"
    assert str(Problem(f, None, "spec.domain", "bad")) == f"{f}: spec.domain: bad"
    assert str(Problem(f, None, "", "bad\nreally")) == f"{f}: bad really"


# --- The JSON Schema ------------------------------------------------------------------------


def test_json_schema_describes_the_yaml_keys() -> None:
    schema = json_schema()
    text = json.dumps(schema)

    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].startswith("https://")
    assert schema["title"] == "Karmayogi tenant spec"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["apiVersion", "kind", "metadata", "spec"]
    assert schema["properties"]["apiVersion"]["const"] == "karmayogi.dev/v1"
    defs = schema["$defs"]
    assert all(d["additionalProperties"] is False for d in defs.values())
    assert defs["Spec"]["properties"]["languages"]["items"]["enum"] == list(LANGUAGES)
    assert defs["Spec"]["properties"]["languages"]["minItems"] == 1
    assert set(defs["Identity"]["properties"]) == {
        "brokerToHub",
        "adminOtp",
        "loginDomain",
        "providers",
        "departments",
        "mail",
    }
    assert set(defs["Deployment"]["properties"]) == {"target", "size", "name"}
    assert defs["Metadata"]["properties"]["type"]["enum"] == ["hub", "state", "country"]
    for python_name in ("api_version", "display_name", "broker_to_hub", "competency_areas"):
        assert python_name not in text
    assert "source" not in defs.get("TenantSpec", schema)["properties"]


def test_cli_prints_the_schema() -> None:
    result = runner.invoke(app, ["schema"])

    assert result.exit_code == 0
    assert json.loads(result.stdout) == json_schema()


def test_demo_specs_match_the_json_schema() -> None:
    # jsonschema is no dependency of the kit; the check runs wherever it is installed.
    jsonschema = pytest.importorskip("jsonschema")
    from ruamel.yaml import YAML

    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    for code in DEMO:
        text = (TENANTS / f"{code}.yaml").read_text(encoding="utf-8")
        jsonschema.validate(YAML(typ="safe").load(text), schema)


# --- The languages --------------------------------------------------------------------------


def test_every_scheduled_language_is_known_with_its_direction() -> None:
    scheduled = "as bn brx doi gu hi kn ks kok mai ml mni mr ne or pa sa sat sd ta te ur"

    assert sorted(SCHEDULED_LANGUAGES) == sorted(scheduled.split())
    assert {"en", "fr", "es", "pt", "ar", "sw", "si", "ms", "id", "ru", "de"} <= set(LANGUAGES)
    assert {code for code, language in LANGUAGES.items() if language.rtl} == {
        "ur",
        "ks",
        "sd",
        "ar",
        "fa",
    }
    for code, language in LANGUAGES.items():
        assert language.code == code == code.lower()
        assert language.english_name and language.native_name
        assert len(language.script) == 4 and language.script.istitle()
    assert LANGUAGES["hi"].native_name == "हिन्दी"
    assert LANGUAGES["ur"].native_name == "اردو"
