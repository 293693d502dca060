"""The suite's private PostgreSQL: started for real, connected to for real, cleaned up."""

from __future__ import annotations

import os
import pwd
import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests import postgres
from tests.postgres import PostgresServer, find_postgres_bin, running_postgres


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    with running_postgres(tmp_path_factory.mktemp("postgres")) as running:
        yield running


def _connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url, connect_timeout=10)


def test_a_created_database_is_reachable_by_its_url(server: PostgresServer) -> None:
    server.create_database("karmayogi_app")

    with (
        _connect(server.url("karmayogi_app")) as first,
        _connect(server.url("karmayogi_app")) as second,
    ):
        version = first.execute("select version()").fetchone()
        database = second.execute("select current_database()").fetchone()

    assert version is not None and str(version[0]).startswith("PostgreSQL ")
    assert database == ("karmayogi_app",)


def test_the_url_names_user_password_host_port_and_database(server: PostgresServer) -> None:
    assert server.url("db") == (
        f"postgresql://karmayogi:{server.password}@127.0.0.1:{server.port}/db"
    )
    assert server.url().endswith("/postgres")


def test_a_wrong_password_is_refused(server: PostgresServer) -> None:
    wrong = server.url().replace(f":{server.password}@", ":not-the-password@")

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _connect(wrong)


def test_it_listens_on_loopback_only_and_trades_durability_for_speed(
    server: PostgresServer,
) -> None:
    with _connect(server.url()) as conn:
        rows = conn.execute(
            "select name, setting from pg_settings where name in "
            "('listen_addresses', 'fsync', 'synchronous_commit', 'full_page_writes', "
            "'server_encoding', 'password_encryption')"
        ).fetchall()
        settings = {str(name): str(setting) for name, setting in rows}

    assert settings == {
        "listen_addresses": "127.0.0.1",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "server_encoding": "UTF8",
        "password_encryption": "scram-sha-256",
    }


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to a service user")
def test_as_root_the_cluster_belongs_to_the_service_user(server: PostgresServer) -> None:
    assert server.data_dir.stat().st_uid == pwd.getpwnam(postgres.SERVICE_USER).pw_uid


def test_it_stops_and_removes_the_cluster_even_when_the_block_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="the test failed"), running_postgres(tmp_path) as pg:
        with _connect(pg.url()) as conn:
            conn.execute("select 1")
        raise RuntimeError("the test failed")

    with pytest.raises(ConnectionRefusedError), socket.create_connection((pg.host, pg.port), 5):
        pass
    assert not pg.data_dir.parent.exists()
    assert "database system is shut down" in (tmp_path / "postgresql.log").read_text()


def test_it_retries_on_another_port_when_its_port_was_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Provoke the race the bind-port-0 probe cannot exclude: the first port it hands out is
    # taken by someone else before the server binds it.
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    ports = iter([taken])
    real_free_port = postgres._free_port
    monkeypatch.setattr(postgres, "_free_port", lambda: next(ports, None) or real_free_port())

    with squatter, running_postgres(tmp_path) as pg, _connect(pg.url()) as conn:
        assert pg.port != taken
        assert conn.execute("select 1").fetchone() == (1,)


def _fake_bin(root: Path, version: str, tools: tuple[str, ...] = ("initdb", "pg_ctl")) -> Path:
    bin_dir = root / version / "bin"
    bin_dir.mkdir(parents=True)
    for tool in tools:
        (bin_dir / tool).touch(mode=0o755)
    return bin_dir


def test_find_postgres_bin_takes_the_newest_complete_version(tmp_path: Path) -> None:
    _fake_bin(tmp_path, "9.6")
    newest_complete = _fake_bin(tmp_path, "15")
    _fake_bin(tmp_path, "16", tools=("initdb",))
    (tmp_path / "common").mkdir()

    assert find_postgres_bin(env={}, root=tmp_path) == newest_complete


def test_find_postgres_bin_honours_the_environment(tmp_path: Path) -> None:
    chosen = _fake_bin(tmp_path, "custom")
    _fake_bin(tmp_path, "17")

    assert find_postgres_bin(env={"KARMAYOGI_PG_BIN": str(chosen)}, root=tmp_path) == chosen
    with pytest.raises(RuntimeError, match="KARMAYOGI_PG_BIN"):
        find_postgres_bin(env={"KARMAYOGI_PG_BIN": str(tmp_path)}, root=tmp_path)


def test_find_postgres_bin_says_how_to_install_when_nothing_is_there(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="apt-get install postgresql"):
        find_postgres_bin(env={}, root=tmp_path / "missing")
