"""What a backup is taken from and restored to: a deployment's two databases and its media.

Every target has the same three kinds of part — each portal's database, Keycloak's database,
each portal's media — kept in one of two ways:

- :class:`PostgresSource`: PostgreSQL for the portals and for Keycloak, and a media folder per
  portal (the VM target; Kubernetes and AWS run the same command against their databases).
  Media kept in an S3 bucket stay there (the bucket's versioning keeps them), and a source may
  name no Keycloak: the backup CronJob of a portal on Kubernetes or AWS backs up that portal's
  own database (``--source portal``), and the deployment's Keycloak is backed up as its own.
  Dumps are ``pg_dump --format=custom``; a restore goes into a new database beside the old
  one and the two names are swapped in one transaction, so a restore that fails leaves the
  database as it was, and one that succeeds holds exactly what was dumped.
- :class:`LocalSource`: the embedded default, with each portal on SQLite (copied with SQLite's
  backup API, consistent while the portal writes) and Keycloak in dev mode on its H2 file
  store, which has no online copy the kit can ask for: Keycloak is stopped for the seconds the
  copy takes and started again (a realm export through the admin API is not a backup: it
  leaves out credentials, sessions and the master realm).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg import sql

from infra.backup.format import BackupError, BackupManifest, PartFile
from infra.home import make_private_dir

Progress = Callable[[str], None]

PG_DUMP_METHOD = "pg_dump --format=custom --no-owner --no-acl"
MEDIA_METHOD = "tar.gz of the media folder"
SQLITE_METHOD = "SQLite online backup API"
H2_METHOD = "tar.gz of Keycloak's dev-file H2 store, copied with Keycloak stopped"
COMMAND_TIMEOUT = 3600.0


class BackupSource(Protocol):
    """A deployment the backup commands act on."""

    @property
    def kind(self) -> str:
        """How its data is kept (``local``, ``postgresql``): a backup restores onto its kind."""
        ...

    @property
    def deployment(self) -> str: ...

    @property
    def tenants(self) -> tuple[str, ...]: ...

    def dump(self, scratch: Path, progress: Progress) -> list[PartFile]:
        """Write every part into ``scratch``."""
        ...

    def check_restorable(self, manifest: BackupManifest) -> None:
        """Refuse, before anything is read or changed, a restore that cannot be done now."""
        ...

    def restore(
        self, manifest: BackupManifest, files: Mapping[str, Path], progress: Progress
    ) -> None:
        """Put every part back; ``files`` are verified copies of the backup's parts."""
        ...


# --- media, the same for every source --------------------------------------------------------


def tar_folder(folder: Path, target: Path) -> None:
    """``folder``'s files as a gzipped tar (an empty one when the folder does not exist)."""
    with tarfile.open(target, "w:gz") as tar:
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)


def _plain_files(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    """The archive's members, refused whole unless each is a file or folder at a relative path
    inside the folder (what :func:`tar_folder` writes). Checked here rather than by tarfile's
    ``data`` filter, which Debian 12's Python (3.11.2) does not have."""
    members = tar.getmembers()
    for member in members:
        parts = Path(member.name).parts
        if not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in parts:
            raise BackupError(f"{archive.name}: {member.name!r} is not a plain file of the media")
    return members


def replace_folder(folder: Path, archive: Path) -> None:
    """Replace ``folder``'s contents with ``archive``'s: unpacked beside it, then swapped in,
    so a failed unpack leaves the old folder as it was."""
    make_private_dir(folder.parent)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-restoring-"))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(staging, members=_plain_files(tar, archive))
        old = folder.parent / f".{folder.name}-replaced"
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            os.replace(folder, old)
        os.replace(staging, folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _run(command: Sequence[str], env: Mapping[str, str], doing: str) -> None:
    try:
        result = subprocess.run(
            list(command),
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise BackupError(
            f"{doing}: {command[0]} is not installed (Debian: apt-get install postgresql-client)"
        ) from None
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        detail = lines[-1] if lines else f"exit code {result.returncode}"
        raise BackupError(f"{doing}: {detail}")


# --- PostgreSQL + media folders ---------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    """A PostgreSQL database named by a libpq URL; its password never reaches a command line
    or an error (it is handed to pg_dump in PGPASSWORD)."""

    url: str

    def _parts(self) -> dict[str, str]:
        from psycopg.conninfo import conninfo_to_dict

        try:
            parts = conninfo_to_dict(self.url)
        except Exception:
            raise BackupError("a database URL does not parse as a libpq URL") from None
        return {k: str(v) for k, v in parts.items() if v is not None}

    @property
    def name(self) -> str:
        return self._parts().get("dbname", "")

    def libpq_env(self, base: Mapping[str, str], database: str | None = None) -> dict[str, str]:
        """``base`` with the URL's parts as libpq variables (other PG* settings kept)."""
        keys = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD"}
        keys |= {"sslmode": "PGSSLMODE", "dbname": "PGDATABASE"}
        env = dict(base) | {"PGCONNECT_TIMEOUT": "10"}
        for key, value in self._parts().items():
            if key in keys:
                env[keys[key]] = value
        if database is not None:
            env["PGDATABASE"] = database
        return env

    @contextmanager
    def _server(self, doing: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """A connection to the server's ``postgres`` database, for work on whole databases."""
        from psycopg.conninfo import make_conninfo

        params = {k: v for k, v in self._parts().items() if k != "dbname"}
        try:
            with psycopg.connect(
                make_conninfo("", **params, dbname="postgres"), autocommit=True
            ) as conn:
                yield conn
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise BackupError(f"database {self.name}: {doing} failed ({reason})") from None

    def others_connected(self) -> int:
        """How many sessions other than ours use the database now."""
        with self._server("checking who uses it") as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                "pg_backend_pid()",
                (self.name,),
            ).fetchone()
        return int(row[0]) if row else 0

    def restore(self, dump: Path, env: Mapping[str, str], doing: str) -> None:
        """Restore ``dump`` into a new database beside this one, then swap the two names in
        one transaction: a restore that fails leaves the database as it was, and one that
        succeeds leaves exactly what was dumped (no table of a later release left over)."""
        name = self.name
        staging, replaced = f"{name[:40]}__restoring", f"{name[:40]}__replaced"
        with self._server("preparing the restore") as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(staging)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(staging)))
        try:
            _run(
                [
                    "pg_restore",
                    "--no-owner",
                    "--no-acl",
                    "--exit-on-error",
                    "--single-transaction",
                    f"--dbname={staging}",
                    str(dump),
                ],
                self.libpq_env(env, database=staging),
                doing,
            )
            with self._server("swapping in the restored database") as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                present = exists.fetchone() is not None
                with conn.transaction():
                    if present:
                        conn.execute(
                            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                                sql.Identifier(name), sql.Identifier(replaced)
                            )
                        )
                    conn.execute(
                        sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                            sql.Identifier(staging), sql.Identifier(name)
                        )
                    )
                if present:
                    conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(replaced)))
        except BaseException:
            with suppress(BackupError), self._server("cleaning up") as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(staging)))
            raise


@dataclass(frozen=True)
class PortalData:
    database: Database
    media_root: Path | None  # None: the media are in media_bucket, not copied
    media_bucket: str | None = None


@dataclass(frozen=True)
class PostgresSource:
    """A deployment whose portals and Keycloak keep their data in PostgreSQL."""

    deployment: str
    portals: Mapping[str, PortalData]
    keycloak: Database | None  # None: Keycloak's database is backed up elsewhere
    env: Mapping[str, str]
    kind: str = "postgresql"

    @property
    def tenants(self) -> tuple[str, ...]:
        return tuple(sorted(self.portals))

    def _dump(self, db: Database, target: Path, doing: str) -> None:
        _run(
            ["pg_dump", "--format=custom", "--no-owner", "--no-acl", f"--file={target}"],
            db.libpq_env(self.env),
            doing,
        )

    def dump(self, scratch: Path, progress: Progress) -> list[PartFile]:
        parts = []
        for code in self.tenants:
            portal = self.portals[code]
            progress(f"portal {code}: dumping database {portal.database.name}")
            path = scratch / f"portal-{code}.pgdump"
            self._dump(portal.database, path, f"dumping {code}'s portal database")
            parts.append(PartFile(path.name, "portal-database", code, PG_DUMP_METHOD, path))
            if portal.media_root is None:
                progress(f"portal {code}: media stay in bucket {portal.media_bucket} (versioned)")
                continue
            progress(f"portal {code}: packing media from {portal.media_root}")
            media = scratch / f"media-{code}.tar.gz"
            tar_folder(portal.media_root, media)
            parts.append(PartFile(media.name, "media", code, MEDIA_METHOD, media))
        if self.keycloak is None:
            progress("Keycloak: not in this backup (the source names no Keycloak database)")
            return parts
        progress(f"Keycloak: dumping database {self.keycloak.name}")
        path = scratch / "keycloak.pgdump"
        self._dump(self.keycloak, path, "dumping Keycloak's database")
        parts.append(PartFile(path.name, "keycloak-database", None, PG_DUMP_METHOD, path))
        return parts

    def check_restorable(self, manifest: BackupManifest) -> None:
        unknown = sorted(set(manifest.tenants) - set(self.portals))
        if unknown:
            raise BackupError(
                f"the backup holds tenant(s) {', '.join(unknown)} that the backup source does "
                "not name; add them to it to restore them"
            )
        for part in manifest.parts:
            if part.kind == "keycloak-database" and self.keycloak is None:
                raise BackupError(
                    "the backup holds Keycloak's database and the backup source names none "
                    "(keycloak.database_url); add it to restore the backup"
                )
            if part.kind == "media" and part.tenant and not self.portals[part.tenant].media_root:
                raise BackupError(
                    f"the backup holds {part.tenant}'s media folder and the backup source keeps "
                    f"its media in bucket {self.portals[part.tenant].media_bucket}; name a "
                    "media_root to restore it"
                )
        databases = [self.portals[code].database for code in manifest.tenants]
        if self.keycloak is not None:
            databases.append(self.keycloak)
        in_use = [db.name for db in databases if db.others_connected()]
        if in_use:
            raise BackupError(
                f"database(s) {', '.join(in_use)} in use: stop the portals and Keycloak "
                "before a restore, and start them again after"
            )

    def _restore(self, db: Database, dump: Path, doing: str) -> None:
        db.restore(dump, self.env, doing)

    def restore(
        self, manifest: BackupManifest, files: Mapping[str, Path], progress: Progress
    ) -> None:
        for part in manifest.parts:
            if part.kind == "keycloak-database" and self.keycloak is not None:
                progress(f"Keycloak: restoring database {self.keycloak.name}")
                self._restore(self.keycloak, files[part.name], "restoring Keycloak's database")
            elif part.kind == "portal-database" and part.tenant is not None:
                db = self.portals[part.tenant].database
                progress(f"portal {part.tenant}: restoring database {db.name}")
                self._restore(db, files[part.name], f"restoring {part.tenant}'s portal database")
            elif part.kind == "media" and part.tenant is not None:
                media = self.portals[part.tenant].media_root
                assert media is not None  # check_restorable refused it otherwise
                progress(f"portal {part.tenant}: restoring media into {media}")
                replace_folder(media, files[part.name])


def read_settings_file(path: Path) -> dict[str, str]:
    """A portal's rendered settings on its host: a JSON object, or ``KEY=VALUE`` lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BackupError(f"{path}: {exc.strerror or exc}") from None
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise BackupError(f"{path}: not JSON ({exc})") from None
        return {k: v for k, v in data.items() if isinstance(v, str)}
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


def _portal(at: str, url: Any, media: Any, bucket: Any) -> PortalData:
    """A portal's database and media, named ``at`` in errors."""
    if not isinstance(url, str) or not url.startswith(("postgres://", "postgresql://")):
        raise BackupError(f"{at}: no PostgreSQL database_url (nor DATABASE_URL in settings)")
    if isinstance(media, str) and media:
        return PortalData(Database(url), Path(media))
    if isinstance(bucket, str) and bucket:
        return PortalData(Database(url), None, bucket)
    raise BackupError(
        f"{at}: no media_root (nor KARMAYOGI_MEDIA_ROOT or KARMAYOGI_MEDIA_S3_BUCKET in settings)"
    )


def portal_source_from_environment(env: Mapping[str, str]) -> PostgresSource:
    """The portal whose settings this process has (``--source portal``): its database, and its
    media folder or bucket, read as the portal reads them (the environment over the file
    ``KARMAYOGI_ENV_FILE`` names). What the chart's backup CronJob runs; no Keycloak."""
    from tenant_portal.settings.contract import SettingsError, decode, media_of

    try:
        values = decode(env)
    except SettingsError as exc:
        raise BackupError(f"the portal's settings: {exc}") from None
    code = values.get("KARMAYOGI_TENANT")
    if not isinstance(code, str) or not code:
        raise BackupError("the portal's settings: KARMAYOGI_TENANT is not set")
    media = media_of(values)
    bucket = media.s3.bucket if media.s3 else None
    portal = _portal(
        "the portal's settings",
        values.get("DATABASE_URL"),
        None if bucket else str(media.root),
        bucket,
    )
    return PostgresSource(code, {code: portal}, None, env)


def postgres_source_from_file(path: Path, env: Mapping[str, str]) -> PostgresSource:
    """The deployment a backup-source file describes (docs/backup.md has its fields).

    Each portal is found from its rendered settings (``DATABASE_URL``, ``KARMAYOGI_MEDIA_ROOT``
    or ``KARMAYOGI_MEDIA_S3_BUCKET``) or given as ``database_url`` and ``media_root``. Without
    ``keycloak``, Keycloak's database is left to be backed up on its own.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BackupError(f"{path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise BackupError(f"{path}: not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise BackupError(f"{path}: expected a JSON object")
    extra = sorted(set(raw) - {"deployment", "keycloak", "portals"})
    if extra:
        raise BackupError(f"{path}: unknown field {extra[0]!r}")
    deployment = raw.get("deployment")
    if not isinstance(deployment, str) or not deployment:
        raise BackupError(f"{path}: deployment must name the deployment")
    keycloak = raw.get("keycloak")
    if keycloak is not None and (
        not isinstance(keycloak, dict) or not isinstance(keycloak.get("database_url"), str)
    ):
        raise BackupError(f"{path}: keycloak.database_url must be a PostgreSQL URL")
    portals_raw = raw.get("portals")
    if not isinstance(portals_raw, dict) or not portals_raw:
        raise BackupError(f"{path}: portals must map each tenant's code to its portal")
    portals = {}
    for code, item in portals_raw.items():
        at = f"{path}: portals.{code}"
        if not isinstance(item, dict):
            raise BackupError(f"{at} must be an object")
        values: dict[str, str] = {}
        if "settings" in item:
            settings = Path(str(item["settings"]))
            settings = settings if settings.is_absolute() else path.parent / settings
            values = read_settings_file(settings)
        url = item.get("database_url") or values.get("DATABASE_URL")
        # As the portal decides: a bucket in its settings holds its media, unless named here.
        bucket = values.get("KARMAYOGI_MEDIA_S3_BUCKET")
        media = item.get("media_root") or (None if bucket else values.get("KARMAYOGI_MEDIA_ROOT"))
        portals[code] = _portal(at, url, media, bucket)
    kc = Database(keycloak["database_url"]) if keycloak is not None else None
    return PostgresSource(deployment, portals, kc, env)


# --- the local target -------------------------------------------------------------------------


class KeycloakProcess(Protocol):
    """The part of the local Keycloak a backup needs: where its store is, stop and start."""

    def running_pid(self) -> int | None: ...

    def stop(self) -> bool: ...

    def start(self) -> object: ...


@dataclass(frozen=True)
class LocalSource:
    """The embedded default under one kit home: SQLite portals and Keycloak's H2 store."""

    portals_root: Path  # <home>/portals/<code>/{portal.sqlite3,media}
    keycloak_store: Path  # Keycloak's data folder; its H2 files are in h2/
    keycloak: KeycloakProcess
    portal_running: Callable[[str], int | None]
    # Held while the home's files are read or replaced: `karmayogi up` waits, or is refused.
    lock: Callable[[], AbstractContextManager[None]] = field(default=nullcontext)
    deployment: str = "local"
    kind: str = "local"

    @property
    def tenants(self) -> tuple[str, ...]:
        root = self.portals_root
        if not root.is_dir():
            return ()
        return tuple(sorted(p.name for p in root.iterdir() if (p / "portal.sqlite3").is_file()))

    def dump(self, scratch: Path, progress: Progress) -> list[PartFile]:
        with self.lock():
            return self._dump(scratch, progress)

    def _dump(self, scratch: Path, progress: Progress) -> list[PartFile]:
        parts = []
        for code in self.tenants:
            folder = self.portals_root / code
            progress(f"portal {code}: copying its SQLite database")
            path = scratch / f"portal-{code}.sqlite3"
            source = sqlite3.connect(folder / "portal.sqlite3")
            try:
                target = sqlite3.connect(path)
                try:
                    source.backup(target)
                finally:
                    target.close()
            finally:
                source.close()
            parts.append(PartFile(path.name, "portal-database", code, SQLITE_METHOD, path))
            progress(f"portal {code}: packing media")
            media = scratch / f"media-{code}.tar.gz"
            tar_folder(folder / "media", media)
            parts.append(PartFile(media.name, "media", code, MEDIA_METHOD, media))
        h2 = self.keycloak_store / "h2"
        if not h2.is_dir():
            raise BackupError(f"{h2} does not exist: has Keycloak run on this home?")
        was_running = self.keycloak.running_pid() is not None
        if was_running:
            progress("Keycloak: stopping it for a consistent copy of its H2 store")
            self.keycloak.stop()
        path = scratch / "keycloak-h2.tar.gz"
        try:
            tar_folder(h2, path)
        finally:
            if was_running:
                progress("Keycloak: starting it again")
                self.keycloak.start()
        parts.append(PartFile(path.name, "keycloak-database", None, H2_METHOD, path))
        return parts

    def check_restorable(self, manifest: BackupManifest) -> None:
        running = [f"portal {code}" for code in manifest.tenants if self.portal_running(code)]
        if self.keycloak.running_pid() is not None:
            running.append("Keycloak")
        if running:
            raise BackupError(
                f"{', '.join(running)} running: stop the local federation with `karmayogi "
                "down` before a restore, and start it again with `karmayogi up` after"
            )

    def restore(
        self, manifest: BackupManifest, files: Mapping[str, Path], progress: Progress
    ) -> None:
        with self.lock():
            self.check_restorable(manifest)  # again, now that `up` cannot start anything
            self._restore(manifest, files, progress)

    def _restore(
        self, manifest: BackupManifest, files: Mapping[str, Path], progress: Progress
    ) -> None:
        for part in manifest.parts:
            if part.kind == "keycloak-database":
                progress("Keycloak: restoring its H2 store")
                replace_folder(self.keycloak_store / "h2", files[part.name])
            elif part.kind == "portal-database" and part.tenant is not None:
                folder = self.portals_root / part.tenant
                progress(f"portal {part.tenant}: restoring its SQLite database")
                make_private_dir(folder)
                staged = folder / ".portal.sqlite3.restoring"
                shutil.copyfile(files[part.name], staged)
                os.chmod(staged, 0o600)
                # A write-ahead log of the replaced database must not be replayed into this one.
                for stale in ("portal.sqlite3-wal", "portal.sqlite3-shm", "portal.sqlite3-journal"):
                    (folder / stale).unlink(missing_ok=True)
                os.replace(staged, folder / "portal.sqlite3")
            elif part.kind == "media" and part.tenant is not None:
                progress(f"portal {part.tenant}: restoring media")
                replace_folder(self.portals_root / part.tenant / "media", files[part.name])
