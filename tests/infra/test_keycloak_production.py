"""Production Keycloak rendered from the spec: options, keycloak.conf and the theme JAR."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from identity.themes import LoginTheme, render_theme, theme_jar, theme_name, write_theme
from infra.keycloak import production
from infra.keycloak.release import KeycloakRuntimeError

LOGO = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle r="5"/></svg>\n'


def keycloak(**overrides: object) -> production.ProductionKeycloak:
    defaults: dict[str, object] = {
        "hostname": "https://auth.bihar.example",
        "database": production.Database(
            host="db.internal",
            name="keycloak",
            username="keycloak",
            password=production.SecretRef("keycloak-db"),
        ),
        "bootstrap_secret": production.SecretRef("keycloak-bootstrap"),
    }
    return production.ProductionKeycloak(**(defaults | overrides))  # type: ignore[arg-type]


def theme(code: str, logo: bytes = LOGO) -> LoginTheme:
    return LoginTheme(
        name=theme_name(code),
        display_name=f"{code.title()} Karmayogi",
        logo=logo,
        logo_suffix=".svg",
        primary="#1a5276",
        accent="#ffb000",
        languages=("en", "hi"),
    )


# --- options ---------------------------------------------------------------------------------


def test_build_options_fix_the_database_and_probes() -> None:
    assert production.build_options(keycloak()) == {
        "db": "postgres",
        "health-enabled": "true",
        "metrics-enabled": "true",
    }
    assert production.build_options(keycloak(features=("token-exchange",)))["features"] == (
        "token-exchange"
    )


def test_a_vault_folder_builds_the_file_vault_and_points_at_the_folder() -> None:
    assert "vault" not in production.options(keycloak())
    kc = keycloak(vault_dir="/opt/keycloak/vault")
    assert production.build_options(kc)["vault"] == "file"  # kc.sh build fixes it
    assert production.runtime_options(kc)["vault-dir"] == "/opt/keycloak/vault"
    notes = production.source_notes(kc)
    assert "vault" in notes and "vault-dir" in notes


def test_one_replica_runs_a_local_cache_behind_the_proxy() -> None:
    options = production.runtime_options(keycloak())
    assert options["hostname"] == "https://auth.bihar.example"
    assert options["proxy-headers"] == "xforwarded"
    assert options["http-enabled"] == "true"
    assert options["http-port"] == "8080"
    assert options["http-management-port"] == "9000"
    assert options["cache"] == "local" and "cache-stack" not in options
    assert "hostname-backchannel-dynamic" not in options
    assert (options["db-url-host"], options["db-url-port"], options["db-url-database"]) == (
        "db.internal",
        "5432",
        "keycloak",
    )
    assert options["db-username"] == "keycloak"
    assert not set(options) & production.SECRET_OPTIONS


def test_replicas_cluster_through_the_database() -> None:
    options = production.runtime_options(keycloak(replicas=3))
    assert options["cache"] == "ispn" and options["cache-stack"] == "jdbc-ping"


def test_an_internal_url_turns_on_dynamic_backchannel_urls() -> None:
    options = production.runtime_options(
        keycloak(
            internal_url="http://keycloak.identity.svc:8080",
            truststore_paths=("/etc/karmayogi/ca.pem",),
            proxy_trusted_addresses=("10.0.0.0/8",),
        )
    )
    assert options["hostname-backchannel-dynamic"] == "true"
    assert options["truststore-paths"] == "/etc/karmayogi/ca.pem"
    assert options["proxy-trusted-addresses"] == "10.0.0.0/8"


def test_heap_follows_the_deployment_size() -> None:
    from infra.render.sizes import SIZES

    assert production.plain_env(keycloak())["JAVA_OPTS_KC_HEAP"] == "-Xms64m -Xmx768m"
    large = keycloak(heap=SIZES["large"].keycloak_heap, replicas=SIZES["large"].keycloak_replicas)
    assert production.plain_env(large)["JAVA_OPTS_KC_HEAP"] == "-Xms64m -Xmx3g"
    with pytest.raises(KeycloakRuntimeError, match="JVM size"):
        keycloak(heap="3 GB")


@pytest.mark.parametrize(
    "hostname", ["http://auth.bihar.example", "auth.bihar.example", "https://a.example/auth"]
)
def test_the_hostname_must_be_an_https_url(hostname: str) -> None:
    with pytest.raises(KeycloakRuntimeError, match="full https URL"):
        keycloak(hostname=hostname)


def test_secrets_are_references_carried_by_the_environment() -> None:
    kc = keycloak()
    env = production.secret_env(kc)
    assert set(env) == set(production.SECRET_ENV_VARS)
    assert env["KC_DB_PASSWORD"] == production.SecretRef("keycloak-db")
    assert production.bootstrap_env("boot", "s3cret") == {
        "KC_BOOTSTRAP_ADMIN_CLIENT_ID": "boot",
        "KC_BOOTSTRAP_ADMIN_CLIENT_SECRET": "s3cret",
    }


# --- keycloak.conf ---------------------------------------------------------------------------


def test_every_option_line_follows_its_source_comment() -> None:
    kc = keycloak(replicas=2, internal_url="http://keycloak:8080")
    options = production.options(kc)
    conf = production.render_conf(options, production.source_notes(kc))
    lines = conf.splitlines()
    settings = [i for i, line in enumerate(lines) if line and not line.startswith("#")]
    assert [lines[i].split("=", 1)[0] for i in settings] == list(options)
    for i in settings:
        assert lines[i - 1].startswith("# ") and len(lines[i - 1]) > 4
    assert "secret keycloak-db" in conf, "the password's reference, never its value"


def test_the_conf_refuses_secrets_and_unexplained_options() -> None:
    with pytest.raises(KeycloakRuntimeError, match="must not hold secrets"):
        production.render_conf({"db-password": "x"}, {"db-password": "nope"})
    with pytest.raises(KeycloakRuntimeError, match="without a source note: log-level"):
        production.render_conf({"log-level": "info"}, {})
    with pytest.raises(KeycloakRuntimeError, match="span lines"):
        production.render_conf({"log-level": "info\ndb-password=x"}, {"log-level": "here"})


# --- the theme JAR ---------------------------------------------------------------------------


def test_the_jar_lists_every_theme_and_holds_their_files(tmp_path: Path) -> None:
    themes = [theme("bihar"), theme("kerala")]
    jar = zipfile.ZipFile(io.BytesIO(theme_jar(themes)))
    listing = json.loads(jar.read("META-INF/keycloak-themes.json"))
    assert listing == {
        "themes": [
            {"name": "karmayogi-bihar", "types": ["email", "login"]},
            {"name": "karmayogi-kerala", "types": ["email", "login"]},
        ]
    }
    for one in themes:
        write_theme(one, tmp_path)
        for rel, content in render_theme(one).items():
            assert jar.read(f"theme/{one.name}/{rel}") == content
            assert (tmp_path / one.name / rel).read_bytes() == content
    names = jar.namelist()
    assert names == sorted(names)


def test_the_jar_is_reproducible_and_changes_with_a_logo() -> None:
    first = theme_jar([theme("bihar"), theme("kerala")])
    assert theme_jar([theme("kerala"), theme("bihar")]) == first
    digest = hashlib.sha256(first).hexdigest()
    new_logo = theme("bihar", logo=LOGO.replace(b'r="5"', b'r="4"'))
    assert hashlib.sha256(theme_jar([new_logo, theme("kerala")])).hexdigest() != digest
    for info in zipfile.ZipFile(io.BytesIO(first)).infolist():
        assert info.date_time == (1980, 1, 1, 0, 0, 0)


def test_the_jar_refuses_a_theme_twice() -> None:
    from identity.errors import IdentityError

    twice = dataclasses.replace(theme("bihar"), display_name="Again")
    with pytest.raises(IdentityError, match="karmayogi-bihar given more than once"):
        theme_jar([theme("bihar"), twice])
