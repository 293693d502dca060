"""A portal whose DATABASE_URL is a file (a mounted Secret) follows a rotated password: each new
connection reads the file again (tenant_portal/database), on the session's real PostgreSQL."""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError
from django.db.utils import ConnectionHandler
from psycopg import sql

from tests.postgres import PostgresServer
from tests.tenant_portal.test_settings import PRODUCTION_ENV, manage


def _url(postgres: PostgresServer, role: str, password: str) -> str:
    # With an option of the URL's own, as RDS's URL has sslmode (the session's server has no TLS).
    address = f"{postgres.host}:{postgres.port}/postgres?sslmode=disable"
    return f"postgresql://{role}:{quote(password, safe='')}@{address}"


def _set_password(postgres: PostgresServer, role: str, password: str, *, create: bool) -> None:
    statement = "CREATE ROLE {} LOGIN PASSWORD {}" if create else "ALTER ROLE {} PASSWORD {}"
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(role), sql.Literal(password)))


def test_a_new_connection_reads_the_rotated_password_and_an_open_one_is_kept(
    postgres: PostgresServer, tmp_path: Path, django_db_blocker: Any
) -> None:
    role, first, second = f"rotated_{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(), "p@ss/w:rd?"
    _set_password(postgres, role, first, create=True)
    url_file = tmp_path / "database-url"
    url_file.write_text(_url(postgres, role, first) + "\n", encoding="utf-8")
    # An option the settings give is kept beside the URL's.
    options = {"application_name": "rotation-test"}
    handler = ConnectionHandler(
        {
            "default": {
                "ENGINE": "tenant_portal.database",
                "URL_FILE": str(url_file),
                "OPTIONS": options,
            }
        }
    )
    connection = handler["default"]
    # A connection of the test's own, outside pytest-django's test databases.
    with django_db_blocker.unblock():
        _rotate(connection, postgres, role, second, url_file, handler)


def _rotate(
    connection: Any,
    postgres: PostgresServer,
    role: str,
    second: str,
    url_file: Path,
    handler: ConnectionHandler,
) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user, current_setting('application_name')")
            assert cursor.fetchone() == (role, "rotation-test")
        # RDS rotates the password; the connection already open keeps working.
        _set_password(postgres, role, second, create=False)
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        # A new connection with the file not yet rewritten is refused: the file is what counts.
        connection.close()
        with pytest.raises(OperationalError), connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        # The Secret is rewritten (the External Secrets Operator, then the kubelet).
        connection.close()
        url_file.write_text(_url(postgres, role, second), encoding="utf-8")
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            assert cursor.fetchone() == (role,)
    finally:
        handler.close_all()


def test_an_unreadable_url_file_is_one_line_without_the_url(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    handler = ConnectionHandler(
        {"default": {"ENGINE": "tenant_portal.database", "URL_FILE": str(missing)}}
    )
    with pytest.raises(ImproperlyConfigured) as raised:
        handler["default"].get_connection_params()
    assert str(raised.value) == (
        f"DATABASE_URL_FILE: cannot read {missing} (No such file or directory)"
    )
    broken = tmp_path / "broken"
    broken.write_text("postgresql://u:hunter2@[::1/db", encoding="utf-8")
    handler = ConnectionHandler(
        {"default": {"ENGINE": "tenant_portal.database", "URL_FILE": str(broken)}}
    )
    with pytest.raises(ImproperlyConfigured) as raised:
        handler["default"].get_connection_params()
    assert str(raised.value).startswith(f"DATABASE_URL_FILE: {broken} cannot be parsed")
    assert "hunter2" not in str(raised.value)


def test_production_settings_choose_the_engine_when_the_url_is_a_file(tmp_path: Path) -> None:
    url_file = tmp_path / "database-url"
    url_file.write_text(PRODUCTION_ENV["DATABASE_URL"], encoding="utf-8")
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DATABASE_URL"}
    code = "from django.db import connection as c; print(c.vendor, c.settings_dict['URL_FILE'])"
    run = manage({**env, "DATABASE_URL_FILE": str(url_file)}, "shell", "-c", code)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines()[-1].split() == ["postgresql", str(url_file)]
    # Named in the settings file instead (KARMAYOGI_ENV_FILE), the same.
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps({"DATABASE_URL_FILE": str(url_file)}), encoding="utf-8")
    run = manage({**env, "KARMAYOGI_ENV_FILE": str(settings_file)}, "shell", "-c", code)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines()[-1].split() == ["postgresql", str(url_file)]
    # Given in the environment, the URL keeps Django's own engine.
    run = manage(
        PRODUCTION_ENV,
        "shell",
        "-c",
        "from django.conf import settings as s; print(s.DATABASES['default']['ENGINE'])",
    )
    assert run.stdout.splitlines()[-1] == "django.db.backends.postgresql", run.stderr[-2000:]
