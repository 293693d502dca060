"""Keycloak's own database user, made by the database's administrator before Keycloak starts.

On aws the platform's RDS keeps its master user's password in Secrets Manager and rotates it
every week. Keycloak reads its database password once, at start, so a Keycloak signed in as
that master user would be refused each new connection after a rotation until its pods
restart. The keycloak chart's ``databaseUser`` hook Job runs this module instead, before each
install and upgrade: signed in as the administrator (the master user, whatever its password
is that day), it makes Keycloak a user of its own with the password the kit keeps (which RDS
does not rotate), gives it the database and its ``public`` schema, and sets the password
again if it changed. Keycloak signs in as that user.

It reads the environment (names below), prints one JSON line ``{"changed": bool, "changes":
[..]}`` and exits 0, or prints one line naming the problem on standard error and exits 1. No
password is ever printed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from infra.errors import KitError

HOST, PORT, DATABASE = "KARMAYOGI_DB_HOST", "KARMAYOGI_DB_PORT", "KARMAYOGI_DB_NAME"
USER, PASSWORD = "KARMAYOGI_DB_USER", "KARMAYOGI_DB_PASSWORD"
ADMIN_USER, ADMIN_PASSWORD = "KARMAYOGI_DB_ADMIN_USER", "KARMAYOGI_DB_ADMIN_PASSWORD"
SSL_MODE = "KARMAYOGI_DB_SSLMODE"
_REQUIRED = (HOST, DATABASE, USER, PASSWORD, ADMIN_USER, ADMIN_PASSWORD)


def ensure_user(admin: Mapping[str, str], database: str, user: str, password: str) -> list[str]:
    """Make ``user`` (a login role with ``password``) own ``database`` and its ``public``
    schema, signed in to it with ``admin``'s connection parameters; each change described."""
    if user == admin.get("user"):
        raise KitError(f"{USER}: the administrator's own user, which is the one to avoid")
    changes: list[str] = []
    role = sql.Identifier(user)
    conninfo = make_conninfo("", **admin, dbname=database, connect_timeout=15)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
        if exists is None:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(password))
            )
            changes.append(f"role {user} created")
        elif not _signs_in(admin, database, user, password):
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(role, sql.Literal(password)))
            changes.append(f"role {user}: password set")
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if owner is None or owner[0] != user:
            # The administrator may hand over a database only to a role it may act as.
            conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(role))
            conn.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database), role)
            )
            changes.append(f"database {database}: owned by {user}")
        schema_owner = conn.execute(
            "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'public'"
        ).fetchone()
        if schema_owner is None or schema_owner[0] != user:
            conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(role))
            changes.append(f"schema {database}.public: owned by {user}")
    return changes


def _signs_in(admin: Mapping[str, str], database: str, user: str, password: str) -> bool:
    params = {k: v for k, v in admin.items() if k not in ("user", "password")}
    conninfo = make_conninfo(
        "", **params, dbname=database, user=user, password=password, connect_timeout=15
    )
    try:
        with psycopg.connect(conninfo):
            return True
    except psycopg.OperationalError:
        return False


def from_environment(environ: Mapping[str, str]) -> tuple[dict[str, str], str, str, str]:
    """The administrator's connection parameters, the database, the user and its password."""
    missing = [name for name in _REQUIRED if not environ.get(name)]
    if missing:
        raise KitError(f"missing {', '.join(missing)}")
    admin = {
        "host": environ[HOST],
        "port": environ.get(PORT) or "5432",
        "user": environ[ADMIN_USER],
        "password": environ[ADMIN_PASSWORD],
        "sslmode": environ.get(SSL_MODE) or "require",
    }
    return admin, environ[DATABASE], environ[USER], environ[PASSWORD]


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    if list(sys.argv[1:] if argv is None else argv):
        print("usage: python -m infra.keycloak.database_user (settings in the environment)")
        return 2
    env = os.environ if environ is None else environ
    try:
        admin, database, user, password = from_environment(env)
        changes = ensure_user(admin, database, user, password)
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        # libpq's messages name the host, user and database, never a password.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: database {env.get(DATABASE)} at {env.get(HOST)}: {reason}", file=sys.stderr)
        return 1
    print(json.dumps({"changed": bool(changes), "changes": changes}))
    return 0


if __name__ == "__main__":  # pragma: no cover - run by the chart's hook Job
    sys.exit(main())
