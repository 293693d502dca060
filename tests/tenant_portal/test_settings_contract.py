"""The portal's settings contract: every malformed setting stops the start with one line that
names it (and never a secret), and what the targets render validates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tenant_portal.settings.contract import (
    SCHEMA_PATH,
    SettingsError,
    decode,
    load_settings,
    parse_federation,
    schema,
    secret_names,
)
from tests.tenant_portal.federation_env import instance_env
from tests.tenant_portal.test_settings import PRODUCTION_ENV, ROOT, SECRET_VALUES, manage

FEDERATION = {
    "code": "bihar",
    "isHub": False,
    "hub": "karmayogi-bharat",
    "hubIssuer": "https://auth.karmayogi.example/realms/karmayogi-bharat",
    "hubUrl": "https://learn.karmayogi.example",
    "clientId": "federation-bihar",
    "clientSecret": "federation-secret-0d9b",
    "publish": True,
    "peers": [{"code": "karmayogi-bharat", "url": "https://learn.karmayogi.example"}],
    "names": {"karmayogi-bharat": "Karmayogi Bharat", "bihar": "Bihar Karmayogi"},
    "subscribe": {"languages": ["hi", "en"], "competencyAreas": ["functional"]},
}
LANGUAGES = [
    {"code": "hi", "name": "Hindi", "name_local": "हिन्दी", "bidi": False},
    {"code": "en", "name": "English", "name_local": "English", "bidi": False},
]
VALID = {
    **PRODUCTION_ENV,
    "KARMAYOGI_SITE_NAME": "Bihar Karmayogi",
    "KARMAYOGI_TENANT_TYPE": "state",
    "KARMAYOGI_LANGUAGES": json.dumps(LANGUAGES, ensure_ascii=False),
    "KARMAYOGI_DEPARTMENTS": json.dumps({"health": "Health Department"}),
    "KARMAYOGI_PRIMARY": "#8b1e3f",
    "KARMAYOGI_FEDERATION": json.dumps(FEDERATION),
    "KARMAYOGI_CONN_MAX_AGE": "300",
    "KARMAYOGI_CACHE_URL": "redis://:cache-password-88f0@cache.internal:6379/0",
}
SECRETS = (*SECRET_VALUES, "federation-secret-0d9b", "cache-password-88f0", "aws-secret-4e21")
S3 = {"KARMAYOGI_MEDIA_ROOT": None, "KARMAYOGI_MEDIA_S3_BUCKET": "bihar-media"}


def with_changes(changes: dict[str, str | None]) -> dict[str, str]:
    env = {**VALID, **{k: v for k, v in changes.items() if v is not None}}
    return {k: v for k, v in env.items() if changes.get(k, "") is not None}


def federation(**changes: Any) -> str:
    return json.dumps({**FEDERATION, **changes})


MALFORMED: list[tuple[str, dict[str, str | None], str]] = [
    (
        "missing required setting",
        {"KARMAYOGI_OIDC_ISSUER": None},
        "KARMAYOGI_OIDC_ISSUER: required setting is missing (production needs it)",
    ),
    (
        "bad URL",
        {"KARMAYOGI_OIDC_ISSUER": "auth.karmayogi.example/realms/bihar"},
        "KARMAYOGI_OIDC_ISSUER: 'auth.karmayogi.example/realms/bihar' is not an http(s) URL",
    ),
    (
        "bad colour",
        {"KARMAYOGI_ACCENT": "#f2a9"},
        "KARMAYOGI_ACCENT: '#f2a9' is not a #rrggbb colour",
    ),
    (
        "bad language code",
        {"KARMAYOGI_LANGUAGES": json.dumps([LANGUAGES[0], {**LANGUAGES[1], "code": "English"}])},
        "KARMAYOGI_LANGUAGES[1].code: 'English' is not a BCP 47 language code",
    ),
    (
        "wrong JSON in KARMAYOGI_FEDERATION",
        {"KARMAYOGI_FEDERATION": federation()[:-1]},
        "KARMAYOGI_FEDERATION: is not valid JSON",
    ),
    (
        "peer without url",
        {"KARMAYOGI_FEDERATION": federation(peers=[{"code": "karmayogi-bharat"}])},
        "KARMAYOGI_FEDERATION.peers[0].url: required key is missing",
    ),
    (
        "peer with an ftp url",
        {"KARMAYOGI_FEDERATION": federation(peers=[{"code": "hub", "url": "ftp://x"}])},
        "KARMAYOGI_FEDERATION.peers[0].url: 'ftp://x' is not an http(s) URL",
    ),
    (
        "unknown key inside KARMAYOGI_FEDERATION",
        {"KARMAYOGI_FEDERATION": federation(hubURL="https://learn.karmayogi.example")},
        "KARMAYOGI_FEDERATION.hubURL: unknown key",
    ),
    (
        "federation secret of the wrong type",
        {"KARMAYOGI_FEDERATION": federation(clientSecret=["federation-secret-0d9b"])},
        "KARMAYOGI_FEDERATION.clientSecret: is not a string",
    ),
    (
        "non-integer CONN_MAX_AGE",
        {"KARMAYOGI_CONN_MAX_AGE": "ten minutes"},
        "KARMAYOGI_CONN_MAX_AGE: 'ten minutes' is not an integer",
    ),
    (
        "negative CONN_MAX_AGE",
        {"KARMAYOGI_CONN_MAX_AGE": "-1"},
        "KARMAYOGI_CONN_MAX_AGE: -1 is below the minimum 0",
    ),
    (
        "sqlite DATABASE_URL under production",
        {"DATABASE_URL": "sqlite:////var/lib/karmayogi/db-password-7c1e.sqlite3"},
        "DATABASE_URL: is not a PostgreSQL URL (postgres:// or postgresql://)",
    ),
    (
        "missing DJANGO_SECRET_KEY under production",
        {"DJANGO_SECRET_KEY": None},
        "DJANGO_SECRET_KEY: required setting is missing (production needs it)",
    ),
    (
        "short DJANGO_SECRET_KEY under production",
        {"DJANGO_SECRET_KEY": SECRET_VALUES[0][:30]},
        "DJANGO_SECRET_KEY: must be at least 50 characters long",
    ),
    (
        "secret file that does not exist",
        {"DJANGO_SECRET_KEY": None, "DJANGO_SECRET_KEY_FILE": "/nonexistent/django-secret-key"},
        "DJANGO_SECRET_KEY_FILE: cannot read /nonexistent/django-secret-key",
    ),
    (
        "secret given twice",
        {"KARMAYOGI_OIDC_CLIENT_SECRET_FILE": "/run/credentials/portal/oidc"},
        "KARMAYOGI_OIDC_CLIENT_SECRET: give it or KARMAYOGI_OIDC_CLIENT_SECRET_FILE, not both",
    ),
    (
        "bad S3 bucket name",
        {**S3, "KARMAYOGI_MEDIA_S3_BUCKET": "Bihar_Media"},
        "KARMAYOGI_MEDIA_S3_BUCKET: 'Bihar_Media' is not an S3 bucket name",
    ),
    (
        "S3 endpoint without a bucket",
        {"KARMAYOGI_MEDIA_S3_ENDPOINT_URL": "https://minio.internal:9000"},
        "KARMAYOGI_MEDIA_S3_ENDPOINT_URL: needs KARMAYOGI_MEDIA_S3_BUCKET as well",
    ),
    (
        "S3 secret key without its id",
        {**S3, "AWS_SECRET_ACCESS_KEY": "aws-secret-4e21"},
        "AWS_SECRET_ACCESS_KEY: needs AWS_ACCESS_KEY_ID as well",
    ),
    (
        "media in two places",
        {"KARMAYOGI_MEDIA_S3_BUCKET": "bihar-media"},
        "KARMAYOGI_MEDIA_ROOT, KARMAYOGI_MEDIA_S3_BUCKET: media go to one place",
    ),
    (
        "no media store under production",
        {"KARMAYOGI_MEDIA_ROOT": None},
        "KARMAYOGI_MEDIA_ROOT, KARMAYOGI_MEDIA_S3_BUCKET: production needs one of them",
    ),
    (
        "debug under production",
        {"DJANGO_DEBUG": "true"},
        "DJANGO_DEBUG: true is not false (production never runs in debug mode)",
    ),
    (
        "unknown time zone",
        {"KARMAYOGI_TIME_ZONE": "Asia/Patna"},
        "KARMAYOGI_TIME_ZONE: 'Asia/Patna' is not a known time zone",
    ),
    (
        "bad department code",
        {"KARMAYOGI_DEPARTMENTS": json.dumps({"Health Dept": "Health"})},
        "KARMAYOGI_DEPARTMENTS: key 'Health Dept' is not a lower-case code",
    ),
]


def assert_one_line_naming(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"settings: {expected}"), lines[0]
    assert "Traceback" not in result.stderr
    for secret in SECRETS:
        assert secret not in result.stderr + result.stdout


@pytest.mark.parametrize(("case", "changes", "expected"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_setting_stops_the_start_with_one_line_naming_it(
    case: str, changes: dict[str, str | None], expected: str
) -> None:
    assert_one_line_naming(manage(with_changes(changes), "check"), expected)


def test_the_wsgi_entry_point_stops_gunicorn_with_one_line() -> None:
    env = with_changes({"KARMAYOGI_PRIMARY": "crimson"})
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME")}
    result = subprocess.run(
        [sys.executable, "-c", "import tenant_portal.wsgi"],
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert_one_line_naming(result, "KARMAYOGI_PRIMARY: 'crimson' is not a #rrggbb colour")
    assert result.returncode == 3  # gunicorn's "worker failed to boot": the server stops


def test_a_settings_module_built_on_production_is_held_to_its_contract(tmp_path: Path) -> None:
    (tmp_path / "site_settings.py").write_text(
        "from tenant_portal.settings.production import *  # noqa: F403\n", encoding="utf-8"
    )
    env = with_changes({"DJANGO_SETTINGS_MODULE": "site_settings", "KARMAYOGI_MEDIA_ROOT": None})
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    assert_one_line_naming(
        manage(env, "check"),
        "KARMAYOGI_MEDIA_ROOT, KARMAYOGI_MEDIA_S3_BUCKET: production needs one of them",
    )
    env["KARMAYOGI_MEDIA_ROOT"] = "/var/lib/karmayogi/bihar/media"
    assert manage(env, "check", "--deploy", "--fail-level", "WARNING").returncode == 0


def test_a_complete_production_environment_passes_the_deploy_checks() -> None:
    result = manage(VALID, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_media_in_an_s3_bucket(tmp_path: Path) -> None:
    key_file = tmp_path / "aws-secret"
    key_file.write_text("aws-secret-4e21\n", encoding="utf-8")
    env = with_changes(
        {
            **S3,
            "KARMAYOGI_MEDIA_S3_ENDPOINT_URL": "https://minio.internal:9000",
            "KARMAYOGI_MEDIA_S3_REGION": "ap-south-1",
            "AWS_ACCESS_KEY_ID": "portal-bihar",
            "AWS_SECRET_ACCESS_KEY_FILE": str(key_file),
        }
    )
    assert manage(env, "check", "--deploy", "--fail-level", "WARNING").returncode == 0
    result = manage(
        env,
        "shell",
        "-c",
        "from django.conf import settings as s; from django.core.files.storage import storages; "
        "d = storages['default']; "
        "print(type(d).__name__, d.bucket_name, d.endpoint_url, d.secret_key == 'aws-secret-4e21',"
        " s.STORAGES['staticfiles']['BACKEND'])",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-5:] == [
        "S3Storage",
        "bihar-media",
        "https://minio.internal:9000",
        "True",
        "whitenoise.storage.CompressedManifestStaticFilesStorage",
    ]


def test_the_contract_validates_what_the_dev_settings_are_given(tmp_path: Path) -> None:
    """What the federation tests give a dev portal, and the kit's rendered env file (every
    value a string, as the local target writes it), both pass, and the dev portal starts."""
    env = instance_env(
        "bihar",
        url="http://127.0.0.22:8000",
        database_url=f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        data_dir=tmp_path,
        federation=FEDERATION,
        domain="bihar.example.org",
    )
    portal = {k: v for k, v in env.items() if k in schema()["properties"]}
    assert load_settings(portal).federation.peers[0].url == "https://learn.karmayogi.example"
    rendered = {
        **portal,
        "KARMAYOGI_STATIC_ROOT": str(tmp_path / "static"),
        "KARMAYOGI_DEPARTMENTS": json.dumps({"health": "Health Department"}),
        "KARMAYOGI_LOGO": str(ROOT / "tenants" / "branding" / "bihar.svg"),
        "KARMAYOGI_OIDC_ISSUER": "http://127.0.0.1:8080/realms/bihar",
        "KARMAYOGI_OIDC_CLIENT_ID": "portal",
        "KARMAYOGI_OIDC_CLIENT_SECRET": "oidc-client-secret-52aa",
        "KARMAYOGI_HUB_IDP": "",
        "KARMAYOGI_HUB_NAME": "",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.22",
    }
    # How the kit validates what it renders: decode by the transport rule, then the schema.
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(decode(rendered))
    env_file = tmp_path / "portal.env.json"
    env_file.write_text(json.dumps(rendered, ensure_ascii=False), encoding="utf-8")
    result = manage({"KARMAYOGI_ENV_FILE": str(env_file)}, "check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "secret-key").exists()  # dev made its own, kept in the data folder


# --- load_settings ---------------------------------------------------------------------------


def test_optional_settings_take_the_schema_defaults() -> None:
    portal = load_settings({})
    assert (portal.tenant, portal.tenant_type, portal.portal_url) == (
        "dev",
        "state",
        "http://127.0.0.1:8000",
    )
    assert [lang.code for lang in portal.languages] == ["en"]
    assert portal.branding.primary == "#1f4e79" and portal.branding.logo == ""
    assert (portal.oai_page_size, portal.page_cache_seconds, portal.max_upload_mb) == (
        100,
        300,
        50,
    )
    assert portal.conn_max_age is None  # the settings module's own default (production: 600)
    assert portal.secret_key is None and not portal.debug and portal.ssl_redirect
    assert portal.database_url == f"sqlite:///{portal.data_dir / 'portal.sqlite3'}"
    assert portal.media.root == portal.data_dir / "media" and portal.media.s3 is None
    assert portal.admin_email == "webmaster@127.0.0.1"
    assert portal.allowed_hosts == ("127.0.0.1", "localhost", "127.0.0.1")
    assert portal.federation_code == "dev"
    assert portal.federation.peers == () and portal.federation.publish
    assert portal.federation.subscribe is None


def test_nested_defaults_are_filled_in() -> None:
    federation = parse_federation({"code": "bihar", "subscribe": {"languages": ["hi"]}})
    assert federation.subscribe is not None
    assert federation.subscribe.competency_areas == ()
    assert federation.members == () and federation.names == {} and not federation.is_hub


def test_the_hub_reads_its_declared_members() -> None:
    member = {
        "code": "bihar",
        "name": "Bihar Karmayogi",
        "tenantType": "state",
        "portalUrl": "https://learn.bihar.example/",
        "keysUrl": "https://learn.bihar.example/federation/v1/keys",
    }
    federation = parse_federation({"code": "hub", "isHub": True, "members": [member]})
    (bihar,) = federation.members
    assert (bihar.code, bihar.portal_url, bihar.publish) == (
        "bihar",
        "https://learn.bihar.example",
        True,
    )
    assert bihar.keys_url == member["keysUrl"] and bihar.tenant_type == "state"
    with pytest.raises(SettingsError) as refused:
        parse_federation({"isHub": True, "members": [{**member, "keysUrl": "ftp://x"}]})
    assert str(refused.value).startswith("KARMAYOGI_FEDERATION.members[0].keysUrl: ")
    with pytest.raises(SettingsError, match=r"KARMAYOGI_FEDERATION.keys: unknown key"):
        parse_federation({"keys": {}})


def test_the_environment_carries_json_for_everything_but_strings() -> None:
    portal = load_settings(
        {
            "KARMAYOGI_CONN_MAX_AGE": "60",
            "KARMAYOGI_SSL_REDIRECT": "false",
            "KARMAYOGI_DEPARTMENTS": '{"health": "स्वास्थ्य विभाग"}',
            "KARMAYOGI_SITE_NAME": "123",  # a string setting is taken as it is
            "UNRELATED_VARIABLE": "ignored",
            "KARMAYOGI_HOME": "/home/kit",  # the kit's own variables are not the portal's
        }
    )
    assert portal.conn_max_age == 60 and portal.ssl_redirect is False
    assert portal.departments["health"] == "स्वास्थ्य विभाग"
    assert portal.site_name == "123"


def test_the_env_file_holds_either_form_and_the_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / "portal.env.json"
    env_file.write_text(
        json.dumps(
            {
                "KARMAYOGI_TENANT": "bihar",
                "KARMAYOGI_CONN_MAX_AGE": 30,  # decoded
                "KARMAYOGI_OAI_PAGE_SIZE": "25",  # encoded
                "KARMAYOGI_FEDERATION": FEDERATION,  # decoded
                "KARMAYOGI_LANGUAGES": json.dumps(LANGUAGES),  # encoded
            }
        ),
        encoding="utf-8",
    )
    portal = load_settings({"KARMAYOGI_ENV_FILE": str(env_file), "KARMAYOGI_TENANT": "goa"})
    assert portal.tenant == "goa"
    assert (portal.conn_max_age, portal.oai_page_size) == (30, 25)
    assert portal.federation.client_secret == "federation-secret-0d9b"
    assert portal.languages[0].name_local == "हिन्दी"


def test_the_env_file_refuses_an_unknown_setting(tmp_path: Path) -> None:
    env_file = tmp_path / "portal.env.json"
    env_file.write_text(json.dumps({"KARMAYOGI_TENNANT": "bihar"}), encoding="utf-8")
    with pytest.raises(SettingsError, match=r"^KARMAYOGI_TENNANT: unknown setting \(in "):
        load_settings({"KARMAYOGI_ENV_FILE": str(env_file)})


def test_a_secret_comes_from_its_file_without_the_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("from-a-credentials-file\n", encoding="utf-8")
    (tmp_path / "federation").write_text("federation-from-a-file\n", encoding="utf-8")
    portal = load_settings(
        {
            "DJANGO_SECRET_KEY_FILE": str(tmp_path / "key"),
            "KARMAYOGI_FEDERATION": json.dumps({"clientId": "federation-dev"}),
            "KARMAYOGI_FEDERATION_CLIENT_SECRET_FILE": str(tmp_path / "federation"),
        }
    )
    assert portal.secret_key == "from-a-credentials-file"
    assert portal.federation.client_secret == "federation-from-a-file"


def test_every_secret_may_come_from_a_file() -> None:
    assert set(secret_names()) == {
        "DATABASE_URL",
        "KARMAYOGI_CACHE_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "KARMAYOGI_OIDC_CLIENT_SECRET",
        "KARMAYOGI_FEDERATION_CLIENT_SECRET",
        "DJANGO_SECRET_KEY",
        "KARMAYOGI_XAPI_PSEUDONYM_KEY",
    }


def test_secrets_stay_out_of_reprs_and_messages() -> None:
    portal = load_settings(with_changes({"KARMAYOGI_MEDIA_ROOT": "/srv/media"}))
    for secret in SECRETS:
        assert secret not in repr(portal)
    with pytest.raises(SettingsError) as raised:
        load_settings(with_changes({"DATABASE_URL": "mysql://portal:db-password-7c1e@db/x"}))
    assert str(raised.value) == "DATABASE_URL: is not a sqlite:// or postgres(ql):// URL"


def test_the_schema_is_closed_at_every_level() -> None:
    """Every object in the contract names its keys (additionalProperties false) or, for a
    map such as ``names``, what its keys and values must be."""
    jsonschema.Draft202012Validator.check_schema(schema())

    def objects(node: Any) -> list[dict[str, Any]]:
        found = []
        if isinstance(node, dict):
            if "properties" in node and "type" in node:
                found.append(node)
            for value in node.values():
                found += objects(value)
        elif isinstance(node, list):
            for value in node:
                found += objects(value)
        return found

    for node in objects(schema()):
        assert node["additionalProperties"] is False, node.get("description")
    maps = [schema()["properties"]["KARMAYOGI_DEPARTMENTS"]]
    maps += [schema()["$defs"]["federation"]["properties"][m] for m in ("names",)]
    for node in maps:
        assert "propertyNames" in node and isinstance(node["additionalProperties"], dict)
