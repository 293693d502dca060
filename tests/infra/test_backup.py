"""Backup and restore of a PostgreSQL deployment (issue 14, item 4), to a folder and to S3.

The deployment is real: a portal database and a Keycloak database on the suite's PostgreSQL
and a media folder, found through the portal's rendered settings as on a VM. S3 is moto's
server on loopback, the only AWS stand-in the suite uses.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner, Result

from infra.backup import BackupError, list_backups, make_backup, prune, restore_backup
from infra.backup.format import MANIFEST
from infra.backup.sources import PostgresSource, postgres_source_from_file, replace_folder
from infra.backup.stores import FolderStore, S3Store, store_for
from infra.cli import app
from tests.postgres import PostgresServer
from tests.rig.moto import CREDENTIALS, MotoServer
from tests.rig.moto import moto_server as start_moto_server

CERTIFICATE = b"%PDF-1.7 a learner's certificate\n"


@dataclass
class Deployment:
    """A portal and a Keycloak database with rows, a media folder, and its backup-source file."""

    server: PostgresServer
    code: str
    portal_db: str
    keycloak_db: str
    media: Path
    source_file: Path

    def rows(self, database: str, table: str) -> list[str]:
        with psycopg.connect(self.server.url(database)) as conn:
            found = conn.execute(
                sql.SQL("SELECT name FROM {} ORDER BY name").format(sql.Identifier(table))
            )
            return [row[0] for row in found]

    def tables(self, database: str) -> list[str]:
        with psycopg.connect(self.server.url(database)) as conn:
            found = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
            return [row[0] for row in found]

    def execute(self, database: str, statement: str) -> None:
        with psycopg.connect(self.server.url(database), autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def drop(self, database: str) -> None:
        with psycopg.connect(self.server.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database)))

    def source(self) -> PostgresSource:
        return postgres_source_from_file(self.source_file, dict(os.environ))


@pytest.fixture
def deployment(postgres: PostgresServer, tmp_path: Path) -> Iterator[Deployment]:
    suffix = uuid.uuid4().hex[:8]
    code = "bihar"
    portal_db, keycloak_db = f"portal_{suffix}", f"keycloak_{suffix}"
    for name in (portal_db, keycloak_db):
        postgres.create_database(name)
    media = tmp_path / "srv" / code / "media"
    (media / "certificates").mkdir(parents=True)
    (media / "certificates" / "cert-1.pdf").write_bytes(CERTIFICATE)
    # The portal's rendered settings on its host, as the VM target writes them.
    settings = tmp_path / "etc" / f"{code}.env"
    settings.parent.mkdir()
    settings.write_text(
        f"DATABASE_URL={postgres.url(portal_db)}\nKARMAYOGI_MEDIA_ROOT={media}\n", encoding="utf-8"
    )
    source_file = tmp_path / "etc" / "backup-source.json"
    source_file.write_text(
        json.dumps(
            {
                "deployment": "bharat",
                "keycloak": {"database_url": postgres.url(keycloak_db)},
                "portals": {code: {"settings": f"{code}.env"}},
            }
        ),
        encoding="utf-8",
    )
    found = Deployment(postgres, code, portal_db, keycloak_db, media, source_file)
    found.execute(portal_db, "CREATE TABLE course (name text PRIMARY KEY)")
    found.execute(portal_db, "INSERT INTO course VALUES ('Noting and drafting'), ('RTI basics')")
    found.execute(keycloak_db, "CREATE TABLE user_entity (name text PRIMARY KEY)")
    found.execute(keycloak_db, "INSERT INTO user_entity VALUES ('asha.learner')")
    yield found
    for name in (portal_db, keycloak_db):
        found.drop(name)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    """moto's S3 server on a free loopback port, with throwaway credentials, for the module."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in CREDENTIALS.items():
            patch.setenv(key, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        with start_moto_server() as server:
            yield server


@pytest.fixture
def moto(moto_server: MotoServer) -> MotoServer:
    """The module's S3 server with a new, empty bucket for the test."""
    return moto_server.with_bucket(f"backups-{uuid.uuid4().hex[:8]}")


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})


def restore(location: str, source: str, *extra: str, env: dict[str, str] | None = None) -> Result:
    """`karmayogi restore` of the backup at ``location`` onto ``source``, without asking."""
    return cli("restore", "--from", location, "--source", source, "--yes", *extra, env=env)


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    # Progress lines ("> 0.1s …") may come first; the failure is one line.
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith(">")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def only_backup(folder: Path) -> Path:
    found = [p for p in folder.iterdir() if p.is_dir()]
    assert len(found) == 1, found
    return found[0]


def backed_up(deployment: Deployment, backups: Path) -> Path:
    """The one backup ``karmayogi backup`` made of the deployment into ``backups``."""
    result = cli("backup", "--to", str(backups), "--source", str(deployment.source_file))
    assert result.exit_code == 0, result.output + result.stderr
    return only_backup(backups)


# --- to a folder ----------------------------------------------------------------------------


def test_backup_to_a_folder_then_restore_brings_back_deleted_data(
    deployment: Deployment, tmp_path: Path
) -> None:
    backup = backed_up(deployment, tmp_path / "backups")
    manifest = json.loads((backup / MANIFEST).read_text())
    assert manifest["format"] == 1
    assert manifest["deployment"] == "bharat"
    assert manifest["tenants"] == ["bihar"]
    assert {p["name"]: p["kind"] for p in manifest["parts"]} == {
        "portal-bihar.pgdump": "portal-database",
        "media-bihar.tar.gz": "media",
        "keycloak.pgdump": "keycloak-database",
    }
    assert all(p["method"] for p in manifest["parts"])
    for part in manifest["parts"]:
        assert (backup / part["name"]).stat().st_size == part["size"]
    assert (backup / "portal-bihar.pgdump").read_bytes().startswith(b"PGDMP")  # custom format

    # Disaster: a course deleted, Keycloak's database dropped, the certificate gone.
    deployment.execute(deployment.portal_db, "DELETE FROM course WHERE name = 'RTI basics'")
    deployment.drop(deployment.keycloak_db)
    (deployment.media / "certificates" / "cert-1.pdf").unlink()

    result = restore(str(backup), str(deployment.source_file))
    assert result.exit_code == 0, result.output + result.stderr
    assert deployment.rows(deployment.portal_db, "course") == ["Noting and drafting", "RTI basics"]
    assert deployment.rows(deployment.keycloak_db, "user_entity") == ["asha.learner"]
    assert (deployment.media / "certificates" / "cert-1.pdf").read_bytes() == CERTIFICATE


def test_a_part_that_does_not_match_its_checksum_is_refused_with_the_database_untouched(
    deployment: Deployment, tmp_path: Path
) -> None:
    backup = backed_up(deployment, tmp_path / "backups")
    dump = backup / "portal-bihar.pgdump"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    deployment.execute(deployment.portal_db, "INSERT INTO course VALUES ('Added after the backup')")

    result = restore(str(backup), str(deployment.source_file))
    line = one_line_error(result)
    assert "portal-bihar.pgdump" in line and "checksum" in line
    assert "nothing was restored" in line
    assert "Added after the backup" in deployment.rows(deployment.portal_db, "course")


def test_a_restore_waits_for_the_services_to_stop_and_then_leaves_exactly_the_backup(
    deployment: Deployment, tmp_path: Path
) -> None:
    backup = backed_up(deployment, tmp_path / "backups")
    # A later release's table, and a portal still connected.
    deployment.execute(deployment.portal_db, "CREATE TABLE later_release (id int)")
    with psycopg.connect(deployment.server.url(deployment.portal_db)):
        line = one_line_error(restore(str(backup), str(deployment.source_file)))
    assert f"{deployment.portal_db} in use" in line and "stop the portals and Keycloak" in line
    assert "later_release" in deployment.tables(deployment.portal_db)

    result = restore(str(backup), str(deployment.source_file))
    assert result.exit_code == 0, result.output + result.stderr
    assert deployment.tables(deployment.portal_db) == ["course"]


def test_an_unwritable_folder_fails_with_one_line_before_any_dump(
    deployment: Deployment, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the backups folder should be")
    result = cli(
        "backup", "--to", str(blocker / "backups"), "--source", str(deployment.source_file)
    )
    line = one_line_error(result)
    assert line.startswith("error: cannot write backups to") and str(blocker) in line


def test_a_dump_that_fails_is_one_line_and_leaves_no_backup_behind(
    deployment: Deployment, tmp_path: Path
) -> None:
    source = json.loads(deployment.source_file.read_text())
    source["keycloak"]["database_url"] = deployment.server.url("no_such_database")
    deployment.source_file.write_text(json.dumps(source))
    backups = tmp_path / "backups"
    line = one_line_error(
        cli("backup", "--to", str(backups), "--source", str(deployment.source_file))
    )
    assert line.startswith("error: dumping Keycloak's database:") and "no_such_database" in line
    assert deployment.server.password not in line
    assert list(backups.iterdir()) == []


def test_restore_from_a_folder_that_is_not_a_backup_is_refused(
    deployment: Deployment, tmp_path: Path
) -> None:
    assert (
        cli(
            "backup", "--to", str(tmp_path / "b"), "--source", str(deployment.source_file)
        ).exit_code
        == 0
    )
    line = one_line_error(restore(str(tmp_path / "b"), str(deployment.source_file)))
    assert "does not name a backup" in line


def test_a_source_file_with_a_missing_field_is_named(tmp_path: Path) -> None:
    source = tmp_path / "source.json"
    source.write_text(json.dumps({"deployment": "bharat", "keycloak": {}}))
    line = one_line_error(cli("backup", "--to", str(tmp_path / "b"), "--source", str(source)))
    assert str(source) in line and "keycloak.database_url" in line
    # Without Keycloak (backed up on its own), the portals are what is missing.
    source.write_text(json.dumps({"deployment": "bharat", "portals": {}}))
    line = one_line_error(cli("backup", "--to", str(tmp_path / "b"), "--source", str(source)))
    assert str(source) in line and "portals must map" in line


# --- retention ------------------------------------------------------------------------------


def test_retention_keeps_the_newest_and_the_young_and_prunes_incomplete_ones_on_request(
    deployment: Deployment, tmp_path: Path
) -> None:
    store = FolderStore(tmp_path / "backups")
    source = deployment.source()
    t0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
    days = [
        make_backup(source, store, lambda _: None, now=t0 + timedelta(days=d)) for d in range(4)
    ]
    # One cut short between the second and the third, one still being written after the last.
    for moment in (t0 + timedelta(days=1, hours=12), t0 + timedelta(days=3, hours=1)):
        name = moment.strftime("%Y%m%dT%H%M%SZ")
        store.open(name)
        store.put_bytes(name, "portal-bihar.pgdump", b"PGDMP half")
    listed = {e.name: e.complete for e in list_backups(store)}
    assert list(listed.values()).count(False) == 2 and list(listed.values()).count(True) == 4

    result = cli("backups", "--to", str(store.root))
    assert result.exit_code == 0
    states = {line.split()[0]: line.split()[1] for line in result.output.splitlines()[1:]}
    assert states == {name: "complete" if done else "INCOMPLETE" for name, done in listed.items()}

    now = t0 + timedelta(days=3, hours=2)
    removed = prune(store, keep=3, now=now)
    assert [e.name for e in removed] == [days[0].name]
    removed = prune(store, max_age=timedelta(days=1, hours=6), now=now)
    assert [e.name for e in removed] == [days[1].name]
    left = list_backups(store)
    assert [e.name for e in left if e.complete] == [days[3].name, days[2].name]
    assert len([e for e in left if not e.complete]) == 2  # incomplete ones stay unless asked

    removed = prune(store, incomplete=True, now=now)
    assert [e.name for e in removed] == ["20261102T140000Z"]  # older than the newest complete
    assert [e.name for e in list_backups(store)] == [
        "20261104T030000Z",  # may still be being written: kept
        days[3].name,
        days[2].name,
    ]
    # However old, the newest complete backup is never removed.
    removed = prune(store, max_age=timedelta(0), now=now + timedelta(days=30))
    assert [e.name for e in removed] == [days[2].name]
    assert days[3].name in [e.name for e in list_backups(store)]


def test_a_backup_with_keep_removes_the_older_complete_ones(
    deployment: Deployment, tmp_path: Path
) -> None:
    store = FolderStore(tmp_path / "backups")
    older = make_backup(
        deployment.source(), store, lambda _: None, now=datetime(2026, 1, 1, tzinfo=UTC)
    )
    result = cli(
        "backup",
        "--to",
        str(store.root),
        "--source",
        str(deployment.source_file),
        "--keep",
        "1",
        "--json",
    )
    assert result.exit_code == 0, result.output + result.stderr
    made = json.loads(result.stdout)
    assert made["complete"] and made["removed"] == [older.name]
    assert [e.name for e in list_backups(store)] == [made["name"]]


# --- to S3 ----------------------------------------------------------------------------------


def test_backup_to_s3_lists_it_and_restores_from_it(
    deployment: Deployment, moto: MotoServer
) -> None:
    to = f"s3://{moto.bucket}/bharat/nightly"
    result = cli(
        "backup",
        "--to",
        to,
        "--source",
        str(deployment.source_file),
        "--s3-endpoint",
        moto.endpoint,
    )
    assert result.exit_code == 0, result.output + result.stderr
    listed = cli("backups", "--to", to, "--s3-endpoint", moto.endpoint, "--json")
    entries = json.loads(listed.stdout)["backups"]
    assert [(e["complete"], e["tenants"]) for e in entries] == [(True, ["bihar"])]

    deployment.drop(deployment.portal_db)
    deployment.execute(deployment.keycloak_db, "DELETE FROM user_entity")
    result = restore(
        entries[0]["location"], str(deployment.source_file), "--s3-endpoint", moto.endpoint
    )
    assert result.exit_code == 0, result.output + result.stderr
    assert deployment.rows(deployment.portal_db, "course") == ["Noting and drafting", "RTI basics"]
    assert deployment.rows(deployment.keycloak_db, "user_entity") == ["asha.learner"]


def test_an_upload_cut_midway_leaves_no_manifest_and_is_not_offered_for_restore(
    deployment: Deployment, moto: MotoServer
) -> None:
    to = f"s3://{moto.bucket}/bharat"
    # Short timeouts and one attempt: the frozen server below fails the upload quickly.
    store = store_for(to, endpoint_url=moto.endpoint, read_timeout=2, connect_timeout=2, attempts=1)
    assert isinstance(store, S3Store)

    def freeze_after_first_part(message: str) -> None:
        if message.startswith("stored "):
            moto.process.send_signal(signal.SIGSTOP)

    with pytest.raises(BackupError, match=r"uploading .*media-bihar\.tar\.gz failed"):
        make_backup(deployment.source(), store, freeze_after_first_part)
    moto.process.send_signal(signal.SIGCONT)

    keys = [o["Key"] for o in moto.client().list_objects_v2(Bucket=moto.bucket)["Contents"]]
    assert any(k.endswith("/portal-bihar.pgdump") for k in keys)
    assert not any(k.endswith(MANIFEST) for k in keys)
    [entry] = list_backups(store)
    assert not entry.complete
    listed = cli("backups", "--to", to, "--s3-endpoint", moto.endpoint)
    assert "INCOMPLETE" in listed.output

    deployment.execute(deployment.portal_db, "DELETE FROM course")
    result = restore(entry.location, str(deployment.source_file), "--s3-endpoint", moto.endpoint)
    line = one_line_error(result)
    assert "incomplete" in line and entry.name in line
    assert deployment.rows(deployment.portal_db, "course") == []  # nothing was touched
    with pytest.raises(BackupError, match="incomplete"):
        restore_backup(deployment.source(), store, entry.name, lambda _: None)


def test_an_unknown_bucket_fails_with_one_line(deployment: Deployment, moto: MotoServer) -> None:
    result = cli(
        "backup",
        "--to",
        "s3://no-such-bucket/x",
        "--source",
        str(deployment.source_file),
        "--s3-endpoint",
        moto.endpoint,
    )
    assert one_line_error(result) == (
        "error: s3://no-such-bucket/x: bucket 'no-such-bucket' does not exist"
    )


@pytest.mark.parametrize("kind", ["a path out of the folder", "a link"])
def test_a_media_archive_with_more_than_plain_files_is_refused_and_the_folder_kept(
    tmp_path: Path, kind: str
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (media / "kept.txt").write_text("kept")
    archive = tmp_path / "media.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        if kind == "a link":
            link = tarfile.TarInfo("certificates/passwd")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(link)
        else:
            data = b"outside"
            escape = tarfile.TarInfo("../escaped.txt")
            escape.size = len(data)
            tar.addfile(escape, io.BytesIO(data))
    with pytest.raises(BackupError, match=r"is not a plain file of the media"):
        replace_folder(media, archive)
    assert (media / "kept.txt").read_text() == "kept"
    assert not (tmp_path / "escaped.txt").exists()


# --- an AWS tenant's bucket, under its own KMS key ---------------------------------------------


def _tenant_bucket(moto: MotoServer, encrypted_with_its_key: bool) -> tuple[str, str]:
    """A bucket and KMS key as the aws target's tenant stack makes them (its alias, the
    bucket's default encryption); the key's alias and ARN."""
    kms = boto3.client("kms", endpoint_url=moto.endpoint)
    alias = f"alias/karmayogi-bihar-{uuid.uuid4().hex[:8]}"
    arn = kms.create_key(Description="the tenant's key")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=alias, TargetKeyId=arn)
    if encrypted_with_its_key:
        moto.client().put_bucket_encryption(
            Bucket=moto.bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": arn,
                        }
                    }
                ]
            },
        )
    return alias, arn


def _backup_under_key(deployment: Deployment, moto: MotoServer, to: str, alias: str) -> Result:
    """`karmayogi backup` of the deployment into ``to`` under the KMS key ``alias``."""
    source = str(deployment.source_file)
    args = ["--to", to, "--source", source, "--s3-endpoint", moto.endpoint, "--s3-kms-key", alias]
    return cli("backup", *args)


def test_a_backup_to_and_restore_from_the_tenants_bucket_under_its_key(
    deployment: Deployment, moto: MotoServer
) -> None:
    alias, arn = _tenant_bucket(moto, encrypted_with_its_key=True)
    to = f"s3://{moto.bucket}/backups"
    result = _backup_under_key(deployment, moto, to, alias)
    assert result.exit_code == 0, result.output + result.stderr
    s3 = moto.client()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=moto.bucket)["Contents"]]
    assert any(k.endswith("/manifest.json") for k in keys) and len(keys) > 1
    for key in keys:  # every part and the manifest, under the tenant's key
        head = s3.head_object(Bucket=moto.bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms", key
        assert head["SSEKMSKeyId"] in (alias, arn), key

    deployment.drop(deployment.portal_db)
    shutil.rmtree(deployment.media)
    (name,) = {k.split("/")[1] for k in keys}
    result = restore(f"{to}/{name}", str(deployment.source_file), "--s3-endpoint", moto.endpoint)
    assert result.exit_code == 0, result.output + result.stderr
    assert deployment.rows(deployment.portal_db, "course") == ["Noting and drafting", "RTI basics"]
    assert (deployment.media / "certificates" / "cert-1.pdf").read_bytes() == CERTIFICATE


def test_a_bucket_without_the_tenants_key_is_refused_in_one_line_before_any_upload(
    deployment: Deployment, moto: MotoServer
) -> None:
    alias, _ = _tenant_bucket(moto, encrypted_with_its_key=False)
    to = f"s3://{moto.bucket}/backups"
    result = _backup_under_key(deployment, moto, to, alias)
    assert one_line_error(result) == (
        f"error: {to}: the bucket is not encrypted with {alias} by default "
        "(a tenant's backups go to its own bucket, under its own key)"
    )
    assert "Contents" not in moto.client().list_objects_v2(Bucket=moto.bucket)


# --- a portal's own backup, as its CronJob takes it on Kubernetes and AWS ---------------------


def _portal_env(deployment: Deployment, tmp_path: Path, bucket: str) -> dict[str, str]:
    """What the chart gives a portal's pods: the settings file (KARMAYOGI_ENV_FILE) with the
    media bucket, and the database's URL from the portal's Secret."""
    settings = tmp_path / "settings.json"
    settings.write_text(
        json.dumps(
            {
                "KARMAYOGI_TENANT": deployment.code,
                "KARMAYOGI_DATA_DIR": str(tmp_path / "data"),
                "KARMAYOGI_MEDIA_S3_BUCKET": bucket,
                "KARMAYOGI_MEDIA_S3_REGION": "ap-south-1",
            }
        ),
        encoding="utf-8",
    )
    url = deployment.server.url(deployment.portal_db)
    return {"KARMAYOGI_ENV_FILE": str(settings), "DATABASE_URL": url}


def test_a_portals_cronjob_backs_up_its_database_to_its_bucket_and_restores_it(
    deployment: Deployment, moto: MotoServer, tmp_path: Path
) -> None:
    """`--source portal` with the aws tenant's CronJob arguments: the portal's database under
    the tenant's key; its media stay in the (versioned) bucket and Keycloak is not its to copy."""
    alias, _ = _tenant_bucket(moto, encrypted_with_its_key=True)
    env = _portal_env(deployment, tmp_path, moto.bucket)
    to = f"s3://{moto.bucket}/backups"
    args = ["backup", "--to", to, "--source", "portal", "--keep", "14", "--s3-kms-key", alias]
    result = cli(*args, "--s3-endpoint", moto.endpoint, "--json", env=env)
    assert result.exit_code == 0, result.output + result.stderr
    assert f"media stay in bucket {moto.bucket}" in result.stderr
    entry = json.loads(result.stdout)
    assert entry["deployment"] == "bihar" and entry["tenants"] == ["bihar"]
    manifest = moto.client().get_object(
        Bucket=moto.bucket, Key=f"backups/{entry['name']}/{MANIFEST}"
    )
    assert [p["kind"] for p in json.loads(manifest["Body"].read())["parts"]] == ["portal-database"]

    deployment.drop(deployment.portal_db)
    deployment.execute(deployment.keycloak_db, "INSERT INTO user_entity VALUES ('after')")
    result = restore(f"{to}/{entry['name']}", "portal", "--s3-endpoint", moto.endpoint, env=env)
    assert result.exit_code == 0, result.output + result.stderr
    assert deployment.rows(deployment.portal_db, "course") == ["Noting and drafting", "RTI basics"]
    # Keycloak's database was never the portal's to restore.
    assert deployment.rows(deployment.keycloak_db, "user_entity") == ["after", "asha.learner"]


def test_a_deployments_backup_is_not_restored_onto_one_portal_in_part(
    deployment: Deployment, moto: MotoServer, tmp_path: Path
) -> None:
    backup = backed_up(deployment, tmp_path / "backups")  # Keycloak and a media folder in it
    deployment.execute(deployment.portal_db, "DELETE FROM course")
    env = _portal_env(deployment, tmp_path, moto.bucket)
    assert one_line_error(restore(str(backup), "portal", env=env)) == (
        f"error: the backup holds bihar's media folder and the backup source keeps its media in "
        f"bucket {moto.bucket}; name a media_root to restore it"
    )
    assert deployment.rows(deployment.portal_db, "course") == []
    # With the media folder named, Keycloak's database is what is missing.
    settings = json.loads(Path(env["KARMAYOGI_ENV_FILE"]).read_text())
    del settings["KARMAYOGI_MEDIA_S3_BUCKET"]
    settings["KARMAYOGI_MEDIA_ROOT"] = str(deployment.media)
    Path(env["KARMAYOGI_ENV_FILE"]).write_text(json.dumps(settings))
    assert one_line_error(restore(str(backup), "portal", env=env)) == (
        "error: the backup holds Keycloak's database and the backup source names none "
        "(keycloak.database_url); add it to restore the backup"
    )
    assert deployment.rows(deployment.portal_db, "course") == []


def test_a_portal_without_its_settings_is_named_in_one_line(tmp_path: Path) -> None:
    result = cli(
        "backup",
        "--to",
        str(tmp_path / "b"),
        "--source",
        "portal",
        env={"KARMAYOGI_TENANT": "bihar", "DATABASE_URL": "", "KARMAYOGI_ENV_FILE": ""},
    )
    assert one_line_error(result) == (
        "error: the portal's settings: no PostgreSQL database_url (nor DATABASE_URL in settings)"
    )
    assert not (tmp_path / "b").exists()
