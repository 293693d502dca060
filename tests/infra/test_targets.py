"""The target seam: one render, many targets; hostnames decided once; no secret leaves."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infra.cli import app
from infra.home import KitHome
from infra.render.inputs import HubLink
from infra.render.portal import PortalSettingsError, validate_portal_settings
from infra.render.sizes import SIZES, largest
from infra.render.tenant import federation_of, references, render_tenants, reveal
from infra.spec import load_specs
from infra.targets.local.render import (
    LocalEndpoint,
    LocalPlacement,
    LocalSecretStore,
    first_local_address,
    local_endpoints,
)
from infra.targets.production import HostnamePlacement, ReferenceSecretStore
from tenant_portal.settings.contract import parse_federation

EXAMPLES = Path(__file__).resolve().parents[2] / "tenants"
runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "tenants"
    shutil.copytree(EXAMPLES, target)
    return target


@pytest.fixture
def vm_options(tmp_path: Path, kit_wheel: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What a vm render needs beyond the others: a vault password file and a host."""
    password = tmp_path / "vault-password"
    password.write_text("a vault password\n", encoding="utf-8")
    monkeypatch.setenv("KARMAYOGI_KIT_WHEEL", str(kit_wheel))
    return ["--vault-password-file", str(password), "--host", "app.vm.example"]


def set_deployment(spec: Path, text: str) -> None:
    content = spec.read_text(encoding="utf-8")
    spec.write_text(content.replace("  deployment:\n", f"  deployment:\n{text}"), "utf-8")


def set_login_domain(spec: Path, domain: str) -> None:
    content = spec.read_text(encoding="utf-8")
    spec.write_text(
        content.replace("  identity:\n", f"  identity:\n    loginDomain: {domain}\n"), "utf-8"
    )


def walk_secret_refs(value: Any, path: str = "") -> dict[str, str]:
    if isinstance(value, dict) and set(value) == {"secretRef"}:
        return {path: value["secretRef"]}
    if isinstance(value, dict):
        found: dict[str, str] = {}
        for key, item in value.items():
            found |= walk_secret_refs(item, f"{path}.{key}" if path else key)
        return found
    return {}


@pytest.mark.parametrize(
    ("target", "reference"),
    [
        ("vm", "ansible-vault:vault_karmayogi_bihar_portal_client_secret"),
        ("kubernetes", "secret:karmayogi-bihar/karmayogi-portal#portal-client-secret"),
        ("aws", "aws-secretsmanager:karmayogi/bihar/portal-client-secret"),
    ],
)
def test_render_for_a_production_target_writes_a_manifest_and_no_secret(
    folder: Path, tmp_path: Path, target: str, reference: str, vm_options: list[str]
) -> None:
    out = tmp_path / "rendered" / "bihar"
    args = ["render", "bihar", "--tenants", str(folder), "--out", str(out)]
    result = runner.invoke(app, [*args, "--target", target, *vm_options])
    assert result.exit_code == 0, result.output

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["target"] == target and manifest["tenants"] == ["bihar"]
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    on_disk = {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in out.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }
    assert listed == on_disk  # every file listed, nothing unlisted, checksums true
    assert "keycloak/providers/karmayogi-themes.jar" in listed
    conf = (out / "keycloak/conf/keycloak.conf").read_text()
    assert "\nhostname=https://auth.learn.bihar.example\n" in conf
    assert "\ndb=postgres\n" in conf
    assert not any(line.startswith(("db-password", "password")) for line in conf.splitlines())
    assert {"KC_DB_PASSWORD", "KC_BOOTSTRAP_ADMIN_CLIENT_SECRET"} <= {
        s["name"] for s in manifest["secrets"]
    }

    settings = json.loads((out / "portal/bihar/settings.json").read_text())
    assert settings["DJANGO_SETTINGS_MODULE"] == "tenant_portal.settings.production"
    assert settings["KARMAYOGI_PORTAL_URL"] == "https://learn.bihar.example"
    assert settings["KARMAYOGI_OIDC_ISSUER"] == "https://auth.learn.bihar.example/realms/bihar"
    refs = walk_secret_refs(settings)
    # Every setting the portal's contract marks as a secret is a reference, never a value.
    schema = json.loads(
        (
            Path(__file__).resolve().parents[2]
            / "tenant_portal/settings/portal-settings.schema.json"
        ).read_text()
    )
    secret_keys = {k for k, v in schema["properties"].items() if v.get("writeOnly")}
    assert {k for k in secret_keys if k in settings} <= set(refs)
    assert refs["KARMAYOGI_OIDC_CLIENT_SECRET"] == reference
    assert "KARMAYOGI_FEDERATION.clientSecret" in refs
    assert {s["reference"] for s in manifest["secrets"]} >= set(refs.values())
    assert f"secret portal_client_secret: kept at {reference}" in result.output


def test_local_secret_values_never_reach_a_production_render(
    folder: Path, tmp_path: Path, vm_options: list[str]
) -> None:
    """A machine that ran `up` holds real client secrets; rendering for VMs must not copy them."""
    home = KitHome(root=tmp_path / "home", cache=tmp_path / "cache")
    values = LocalSecretStore(home).values("bihar")
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "render",
            "bihar",
            "--target",
            "vm",
            "--out",
            str(out),
            "--tenants",
            str(folder),
            *vm_options,
        ],
        env={"KARMAYOGI_HOME": str(home.root)},
    )
    assert result.exit_code == 0, result.output
    blob = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    for value in values.values():
        assert value.encode() not in blob


def test_the_spec_names_the_target_and_the_flag_overrides_it(folder: Path, tmp_path: Path) -> None:
    spec = folder / "bihar.yaml"
    spec.write_text(spec.read_text().replace("target: local", "target: kubernetes"))
    out = tmp_path / "k"
    result = runner.invoke(app, ["render", "bihar", "--tenants", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "manifest.json").read_text())["target"] == "kubernetes"
    out = tmp_path / "a"
    args = ["render", "bihar", "--tenants", str(folder), "--out", str(out), "--target", "aws"]
    assert runner.invoke(app, args).exit_code == 0
    assert json.loads((out / "manifest.json").read_text())["target"] == "aws"


def test_an_unknown_target_or_tenant_is_one_line(folder: Path, tmp_path: Path) -> None:
    args = ["render", "bihar", "--tenants", str(folder), "--out", str(tmp_path / "x")]
    result = runner.invoke(app, [*args, "--target", "mainframe"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: unknown target 'mainframe'; known: local, vm, kubernetes, aws"
    )
    result = runner.invoke(app, ["render", "goa", "--tenants", str(folder)])
    assert result.exit_code == 1 and result.output.strip().startswith("error: no tenant spec")


def test_deploying_to_kubernetes_without_helm_says_so_before_any_work(
    folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rendered"
    args = [
        "deploy",
        "bihar",
        "--target",
        "kubernetes",
        "--tenants",
        str(folder),
        "--out",
        str(out),
    ]
    result = runner.invoke(app, args, env={"PATH": str(tmp_path), "KARMAYOGI_HELM": ""})
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: helm is not on PATH: install Helm 3.x or 4.x, or set KARMAYOGI_HELM"
    ]
    assert not out.exists()


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("bihar", "kubectl logs -n karmayogi-bihar deploy/portal-bihar"),
        ("keycloak", "kubectl logs -n karmayogi-DEPLOYMENT deploy/keycloak-DEPLOYMENT"),
    ],
)
def test_logs_on_kubernetes_name_the_kubectl_command(folder: Path, name: str, command: str) -> None:
    args = ["logs", name, "--target", "kubernetes", "--tenants", str(folder)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: on the kubernetes target the logs are the cluster's: ")
    assert command in line


def test_deploying_to_vms_without_the_vault_password_file_stops_before_any_work(
    folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rendered"
    args = ["deploy", "bihar", "--target", "vm", "--tenants", str(folder), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: the vm target keeps secrets in an Ansible Vault: give --vault-password-file "
        "FILE (a file holding the vault's password, kept out of git)"
    ]
    assert not out.exists()


def test_tenants_sharing_a_keycloak_must_share_its_hostname(folder: Path) -> None:
    for code in ("bihar", "rajasthan"):
        spec = folder / f"{code}.yaml"
        spec.write_text(spec.read_text().replace("target: local", "target: vm"))
        set_deployment(spec, "    name: north\n")
    result = runner.invoke(app, ["validate", str(folder)])
    assert result.exit_code == 1
    (problem,) = result.output.strip().splitlines()
    assert problem.startswith(f"{folder / 'rajasthan.yaml'}:")
    assert "spec.identity.loginDomain: 'auth.learn.rajasthan.example' differs from " in problem
    assert "shares deployment 'north'" in problem

    for code in ("bihar", "rajasthan"):
        set_login_domain(folder / f"{code}.yaml", "auth.north.example")
    result = runner.invoke(app, ["validate", str(folder)])
    assert result.exit_code == 0, result.output
    # Rendered once, the shared name is in the issuers, redirect URIs stay on each portal.
    specs = load_specs([folder])
    placement = HostnamePlacement(specs, "/srv")
    store = ReferenceSecretStore(lambda code, name: f"test:{code}/{name}")
    logos = {s.code: b"<svg/>" for s in specs}
    rendered = {r.code: r for r in render_tenants(specs, placement, store, logos)}
    assert rendered["bihar"].issuer == "https://auth.north.example/realms/bihar"
    assert rendered["rajasthan"].issuer == "https://auth.north.example/realms/rajasthan"
    assert rendered["bihar"].realm.portal.redirect_uris == (
        "https://learn.bihar.example/auth/callback/",
    )
    assert rendered["bihar"].realm.keys_url == "https://learn.bihar.example/federation/v1/keys"


def test_a_deployment_has_one_target(folder: Path) -> None:
    for code, target in (("bihar", "vm"), ("rajasthan", "kubernetes")):
        spec = folder / f"{code}.yaml"
        spec.write_text(spec.read_text().replace("target: local", f"target: {target}"))
        set_deployment(spec, "    name: north\n")
    result = runner.invoke(app, ["validate", str(folder)])
    assert result.exit_code == 1
    assert "spec.deployment.target: shares deployment 'north'" in result.output
    assert "one deployment has one target" in result.output


@pytest.mark.parametrize("whose", ["own", "other"])
def test_keycloak_never_shares_a_portal_hostname(folder: Path, whose: str) -> None:
    domain = "learn.bihar.example" if whose == "own" else "learn.rajasthan.example"
    set_login_domain(folder / "bihar.yaml", domain)
    result = runner.invoke(app, ["validate", str(folder)])
    assert result.exit_code == 1
    assert "bihar.yaml:" in result.output and "spec.identity.loginDomain:" in result.output


def test_sizes_are_one_table_and_a_shared_keycloak_takes_the_largest() -> None:
    assert list(SIZES) == ["small", "medium", "large"]
    workers = [SIZES[s].portal_workers for s in SIZES]
    assert workers == sorted(workers) and workers[0] >= 2
    assert SIZES["small"].keycloak_replicas == 1 and SIZES["medium"].keycloak_replicas >= 2
    assert largest(["small", "large", "medium"]) == "large"


def test_the_portal_contract_refuses_a_bad_rendered_setting_naming_it() -> None:
    specs = load_specs([EXAMPLES])
    store = ReferenceSecretStore(lambda code, name: f"test:{code}/{name}")
    logos = {s.code: b"<svg/>" for s in specs}
    good = render_tenants(specs, HostnamePlacement(specs, "/srv"), store, logos)
    for tenant in good:
        validate_portal_settings(tenant.portal, source=tenant.code)  # references are fine
    broken = dict(good[0].portal) | {"KARMAYOGI_PRIMARY": "crimson"}
    with pytest.raises(PortalSettingsError) as error:
        validate_portal_settings(broken, source="the rendered settings of x")
    assert str(error.value).startswith("the rendered settings of x: KARMAYOGI_PRIMARY: ")
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="kept at test:"):
        reveal(good[0].portal)
    assert references(good[0].portal)["KARMAYOGI_OIDC_CLIENT_SECRET"] == {
        "secretRef": f"test:{good[0].code}/portal_client_secret"
    }


def test_the_spec_providers_names_reach_the_portal_settings_by_language() -> None:
    specs = load_specs([EXAMPLES])
    store = ReferenceSecretStore(lambda code, name: f"test:{code}/{name}")
    logos = {s.code: b"<svg/>" for s in specs}
    rendered = {
        r.code: r for r in render_tenants(specs, HostnamePlacement(specs, "/srv"), store, logos)
    }
    bihar = rendered["bihar"].portal
    validate_portal_settings(bihar, source="bihar")
    assert bihar["KARMAYOGI_PROVIDER_NAME"]["en"] == "Government of Bihar"
    assert bihar["KARMAYOGI_PROVIDER_NAME"]["hi"] == "बिहार सरकार"
    assert set(rendered["mauritius"].portal["KARMAYOGI_PROVIDER_NAME"]) == {"en", "fr"}
    broken = dict(bihar) | {"KARMAYOGI_PROVIDER_NAME": {"hi": ""}}
    with pytest.raises(PortalSettingsError, match=r"^bihar: KARMAYOGI_PROVIDER_NAME"):
        validate_portal_settings(broken, source="bihar")


def test_a_tenant_of_a_remote_hub_federates_only_once_it_has_accepted_credentials(
    folder: Path, tmp_path: Path
) -> None:
    """Mauritius names its hub by {code, url}: before `accept` its portal pulls nothing and
    has no client; after, it takes tokens from the remote realm and pulls the hub."""
    spec = folder / "mauritius.yaml"
    text = spec.read_text(encoding="utf-8")
    spec.write_text(
        text.replace(
            "hub: karmayogi-bharat", 'hub: {code: karmayogi-bharat, url: "https://hub.test"}'
        ),
        "utf-8",
    )
    for other in ("karmayogi-bharat", "bihar", "rajasthan"):
        (folder / f"{other}.yaml").unlink()
    specs = load_specs([folder])
    home = KitHome(root=tmp_path / "home", cache=tmp_path / "cache")
    placement = LocalPlacement({"mauritius": LocalEndpoint("127.0.0.2", 8000)}, "http://kc", home)
    logos = {s.code: s.logo_path.read_bytes() for s in specs}
    store = LocalSecretStore(home)

    (before,) = render_tenants(specs, placement, store, logos)
    federation = reveal(before.portal)["KARMAYOGI_FEDERATION"]
    assert federation["hubUrl"] == "https://hub.test" and federation["peers"] == []
    assert "clientSecret" not in federation and "hubIssuer" not in federation
    assert federation_of([before], "http://kc").remote_hub is None

    issuer = "https://auth.hub.test/realms/karmayogi-bharat"
    link = HubLink("karmayogi-bharat", "Karmayogi Bharat", "https://hub.test", issuer)
    (after,) = render_tenants(specs, placement, store, logos, hub_links={"mauritius": link})
    settings = reveal(after.portal)
    federation = settings["KARMAYOGI_FEDERATION"]
    assert federation["hubIssuer"] == issuer
    assert federation["clientId"] == "federation-mauritius"
    assert federation["clientSecret"] == store.values("mauritius")["federation_client_secret"]
    assert federation["peers"] == [{"code": "karmayogi-bharat", "url": "https://hub.test"}]
    validate_portal_settings(settings, source="test")
    remote = federation_of([after], "http://kc").remote_hub
    assert remote is not None and remote.issuer == issuer


def test_a_link_only_subscription_reaches_the_portal_settings(folder: Path, tmp_path: Path) -> None:
    """Mauritius keeps Bihar's courses, and one hub course, links to their origin's portal."""
    course = "https://learn.karmayogi.example/courses/6c1e2f3a-0000-4000-8000-000000000001"
    spec = folder / "mauritius.yaml"
    text = spec.read_text(encoding="utf-8")
    subscribe = "subscribe: {languages: [en], competencyAreas: [behavioural, functional]}"
    assert subscribe in text
    text = text.replace(subscribe, subscribe[:-1] + f', linkOnly: [bihar, "{course}"]}}')
    text = text.replace(
        "hub: karmayogi-bharat", 'hub: {code: karmayogi-bharat, url: "https://hub.test"}'
    )
    spec.write_text(text, "utf-8")
    for other in ("karmayogi-bharat", "bihar", "rajasthan"):
        (folder / f"{other}.yaml").unlink()
    specs = load_specs([folder])
    home = KitHome(root=tmp_path / "home", cache=tmp_path / "cache")
    placement = LocalPlacement({"mauritius": LocalEndpoint("127.0.0.2", 8000)}, "http://kc", home)
    logos = {s.code: s.logo_path.read_bytes() for s in specs}
    (rendered,) = render_tenants(specs, placement, LocalSecretStore(home), logos)
    settings = reveal(rendered.portal)
    validate_portal_settings(settings, source="test")
    federation = parse_federation(settings["KARMAYOGI_FEDERATION"], tenant="mauritius")
    assert federation.subscribe is not None
    assert federation.subscribe.link_only == ("bihar", course)


def test_a_second_home_hands_out_addresses_from_its_own_first_one(
    folder: Path, tmp_path: Path
) -> None:
    specs = load_specs([folder])
    home = KitHome(root=tmp_path / "home", cache=tmp_path / "cache")
    home.create()
    first = first_local_address({"KARMAYOGI_LOCAL_ADDRESS": "127.0.9.2"})
    endpoints = local_endpoints(specs, home, first)
    hub = next(s.code for s in specs if s.is_hub)
    assert endpoints[hub].host == "127.0.9.2"
    hosts = sorted(e.host for e in endpoints.values())
    assert hosts == [f"127.0.9.{2 + i}" for i in range(len(specs))]
    # Kept: a later call (status, a restart) names the same addresses, whatever it is given.
    assert local_endpoints(specs, home) == endpoints


@pytest.mark.parametrize("given", ["10.1.2.3", "127.0.2", "127.0.2.255", "localhost"])
def test_up_refuses_a_local_address_off_loopback_before_anything_starts(
    folder: Path, tmp_path: Path, given: str
) -> None:
    home = tmp_path / "home"
    env = {"KARMAYOGI_HOME": str(home), "KARMAYOGI_LOCAL_ADDRESS": given}
    result = runner.invoke(app, ["up", "--tenants", str(folder)], env=env)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: KARMAYOGI_LOCAL_ADDRESS={given!r}: give a loopback address such as 127.0.2.2"
    ]
    assert not (home / "keycloak").exists()
