"""Keycloak's own database user (infra/keycloak/database_user.py), made the way the keycloak
chart's hook Job makes it, on the session's real PostgreSQL, with an administrator that is not
a superuser but may create roles and owns the database, as RDS's master user is."""

from __future__ import annotations

import json
import secrets
import uuid

import psycopg
import pytest
from psycopg import sql

from infra.keycloak.database_user import main
from tests.postgres import PostgresServer


def _as_superuser(postgres: PostgresServer, statement: sql.Composable) -> None:
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture
def rds_like(postgres: PostgresServer) -> dict[str, str]:
    """A database owned by an administrator like RDS's master user (CREATEROLE, CREATEDB)."""
    tag = uuid.uuid4().hex[:8]
    admin, password, database = f"master_{tag}", secrets.token_urlsafe(), f"keycloak_{tag}"
    _as_superuser(
        postgres,
        sql.SQL("CREATE ROLE {} LOGIN CREATEROLE CREATEDB PASSWORD {}").format(
            sql.Identifier(admin), sql.Literal(password)
        ),
    )
    _as_superuser(
        postgres,
        sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(database), sql.Identifier(admin)
        ),
    )
    return {
        "KARMAYOGI_DB_HOST": postgres.host,
        "KARMAYOGI_DB_PORT": str(postgres.port),
        "KARMAYOGI_DB_NAME": database,
        "KARMAYOGI_DB_USER": f"keycloak_{tag}",
        "KARMAYOGI_DB_PASSWORD": secrets.token_urlsafe(32),
        "KARMAYOGI_DB_ADMIN_USER": admin,
        "KARMAYOGI_DB_ADMIN_PASSWORD": password,
        "KARMAYOGI_DB_SSLMODE": "disable",  # the session's server has no TLS; RDS: require
    }


def _run(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main([], env)
    out, err = capsys.readouterr()
    return status, out, err


def _keycloak_can_make_its_tables(env: dict[str, str], password: str) -> None:
    with psycopg.connect(
        host=env["KARMAYOGI_DB_HOST"],
        port=env["KARMAYOGI_DB_PORT"],
        dbname=env["KARMAYOGI_DB_NAME"],
        user=env["KARMAYOGI_DB_USER"],
        password=password,
        autocommit=True,
    ) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.realm (id text PRIMARY KEY)")
        conn.execute("INSERT INTO public.realm VALUES (%s) ON CONFLICT DO NOTHING", ("bihar",))


def test_keycloak_gets_a_user_of_its_own_that_owns_its_database_and_keeps_it(
    rds_like: dict[str, str], postgres: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    env = rds_like
    status, out, err = _run(env, capsys)
    assert status == 0, err
    user, database = env["KARMAYOGI_DB_USER"], env["KARMAYOGI_DB_NAME"]
    assert json.loads(out) == {
        "changed": True,
        "changes": [
            f"role {user} created",
            f"database {database}: owned by {user}",
            f"schema {database}.public: owned by {user}",
        ],
    }
    _keycloak_can_make_its_tables(env, env["KARMAYOGI_DB_PASSWORD"])
    # The next upgrade changes nothing, though the administrator's password has changed
    # (RDS rotated it, and the Job read the new one).
    rotated = secrets.token_urlsafe()
    _as_superuser(
        postgres,
        sql.SQL("ALTER ROLE {} PASSWORD {}").format(
            sql.Identifier(env["KARMAYOGI_DB_ADMIN_USER"]), sql.Literal(rotated)
        ),
    )
    env = {**env, "KARMAYOGI_DB_ADMIN_PASSWORD": rotated}
    status, out, err = _run(env, capsys)
    assert (status, json.loads(out)) == (0, {"changed": False, "changes": []}), err
    # A new password kept for Keycloak is set, and Keycloak's tables stay its own.
    new = {**env, "KARMAYOGI_DB_PASSWORD": secrets.token_urlsafe(32)}
    status, out, err = _run(new, capsys)
    assert (status, json.loads(out)["changes"]) == (0, [f"role {user}: password set"]), err
    _keycloak_can_make_its_tables(new, new["KARMAYOGI_DB_PASSWORD"])
    assert new["KARMAYOGI_DB_PASSWORD"] not in out + err


def test_problems_are_one_line_without_a_password(
    rds_like: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    env = rds_like
    missing = {k: v for k, v in env.items() if k != "KARMAYOGI_DB_PASSWORD"}
    assert _run(missing, capsys)[0:3:2] == (1, "error: missing KARMAYOGI_DB_PASSWORD\n")
    same = {**env, "KARMAYOGI_DB_USER": env["KARMAYOGI_DB_ADMIN_USER"]}
    status, _, err = _run(same, capsys)
    assert (status, err) == (
        1,
        "error: KARMAYOGI_DB_USER: the administrator's own user, which is the one to avoid\n",
    )
    wrong = {**env, "KARMAYOGI_DB_ADMIN_PASSWORD": "not-" + env["KARMAYOGI_DB_ADMIN_PASSWORD"]}
    status, _, err = _run(wrong, capsys)
    assert status == 1 and len(err.splitlines()) == 1, err
    assert err.startswith(
        f"error: database {env['KARMAYOGI_DB_NAME']} at {env['KARMAYOGI_DB_HOST']}: "
    )
    assert "password authentication failed" in err
    assert (
        wrong["KARMAYOGI_DB_ADMIN_PASSWORD"] not in err and env["KARMAYOGI_DB_PASSWORD"] not in err
    )
