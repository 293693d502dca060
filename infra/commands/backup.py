"""Backups: `backup`, `backups`, `restore` — one format and one command on every target."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from infra.commands.common import JSON_OPTION, columns, err, friendly_errors, read_env

if TYPE_CHECKING:  # the backup modules (psycopg, boto3) load only when a command runs
    from infra.backup.sources import BackupSource, Progress

app = typer.Typer()

SOURCE_OPTION = typer.Option(
    None,
    "--source",
    envvar="KARMAYOGI_BACKUP_SOURCE",
    help="'local' (the embedded default under $KARMAYOGI_HOME), 'portal' (the portal whose "
    "settings this process has, as in its backup CronJob), or a backup-source JSON file naming "
    "a PostgreSQL deployment's databases and media (docs/backup.md).",
)
TO_OPTION = typer.Option(
    ...,
    "--to",
    envvar="KARMAYOGI_BACKUP_TO",
    help="Where backups are kept: a folder, or s3://bucket/prefix.",
)
ENDPOINT_OPTION = typer.Option(
    None,
    "--s3-endpoint",
    envvar="KARMAYOGI_BACKUP_S3_ENDPOINT",
    help="The endpoint of an S3-compatible store (default: AWS).",
)
KMS_KEY_OPTION = typer.Option(
    None,
    "--s3-kms-key",
    envvar="KARMAYOGI_BACKUP_S3_KMS_KEY",
    help="Encrypt the backup's objects with this KMS key (an AWS tenant's: "
    "alias/karmayogi-<code>-<environment>); the bucket must be encrypted with it by default.",
)
KEEP_OPTION = typer.Option(None, "--keep", min=1, help="Keep the newest N complete backups.")
MAX_AGE_OPTION = typer.Option(
    None, "--max-age", min=0, help="Keep complete backups younger than DAYS days."
)


def _source(value: str | None, env: dict[str, str]) -> BackupSource:
    from infra.backup.sources import (
        LocalSource,
        portal_source_from_environment,
        postgres_source_from_file,
    )

    if value in (None, "", "local"):
        from infra.targets.local.portals import running_pid
        from infra.targets.local.runtime import local_keycloak, up_lock

        kc = local_keycloak(env)
        home = kc.paths.home
        return LocalSource(
            portals_root=home.root / "portals",
            keycloak_store=kc.paths.store,
            keycloak=kc,
            portal_running=lambda code: running_pid(code, home),
            lock=lambda: up_lock(home),
        )
    if value == "portal":
        return portal_source_from_environment(env)
    return postgres_source_from_file(Path(str(value)), env)


def _progress() -> Progress:
    started = time.monotonic()

    def progress(message: str) -> None:
        err.print(f"[bold]>[/] [dim]{time.monotonic() - started:5.1f}s[/] {message}")

    return progress


@app.command()
@friendly_errors
def backup(
    to: str = TO_OPTION,
    source: str | None = SOURCE_OPTION,
    s3_endpoint: str | None = ENDPOINT_OPTION,
    s3_kms_key: str | None = KMS_KEY_OPTION,
    keep: int | None = KEEP_OPTION,
    max_age: int | None = MAX_AGE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Back up the databases (each portal's and Keycloak's) and the media, with checksums.

    With --source portal, the one portal whose settings this process has (its database, and
    its media folder unless they are in a bucket): what a portal's backup CronJob runs.

    The manifest is stored last: a backup cut short has none, is listed as incomplete and is
    never restored. With --keep/--max-age, older complete backups are then removed.
    """
    from infra.backup import make_backup, prune
    from infra.backup.stores import store_for

    env = read_env()
    store = store_for(to, endpoint_url=s3_endpoint, kms_key=s3_kms_key)
    entry = make_backup(_source(source, env), store, _progress())
    removed = []
    if keep is not None or max_age is not None:
        age = timedelta(days=max_age) if max_age is not None else None
        removed = prune(store, keep=keep, max_age=age)
    if as_json:
        result = entry.as_dict() | {"removed": [r.name for r in removed]}
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"Backup {entry.location} is complete.")
    for gone in removed:
        typer.echo(f"Removed {gone.location} (retention).")


@app.command()
@friendly_errors
def backups(
    to: str = TO_OPTION,
    s3_endpoint: str | None = ENDPOINT_OPTION,
    keep: int | None = KEEP_OPTION,
    max_age: int | None = MAX_AGE_OPTION,
    drop_incomplete: bool = typer.Option(
        False,
        "--drop-incomplete",
        help="Remove incomplete backups older than the newest complete one.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """List the backups in a destination, complete or incomplete; prune with --keep,
    --max-age and --drop-incomplete."""
    from infra.backup import list_backups, prune
    from infra.backup.stores import store_for

    store = store_for(to, endpoint_url=s3_endpoint)
    removed = []
    if keep is not None or max_age is not None or drop_incomplete:
        age = timedelta(days=max_age) if max_age is not None else None
        removed = prune(store, keep=keep, max_age=age, incomplete=drop_incomplete)
    entries = list_backups(store)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "backups": [e.as_dict() for e in entries],
                    "removed": [r.name for r in removed],
                },
                indent=2,
            )
        )
        return
    for gone in removed:
        typer.echo(f"Removed {gone.location}{'' if gone.complete else ' (incomplete)'}.")
    if not entries:
        typer.echo(f"No backups in {store.location}.")
        return
    rows = [("BACKUP", "STATE", "TENANTS", "LOCATION")]
    for e in entries:
        state = "complete" if e.complete else "INCOMPLETE"
        tenants = ",".join(e.manifest.tenants) if e.manifest else "-"
        rows.append((e.name, state, tenants or "-", e.location))
    typer.echo("\n".join(columns(rows)))


@app.command()
@friendly_errors
def restore(
    from_: str = typer.Option(
        ...,
        "--from",
        help="The backup: a backup's folder, or s3://bucket/prefix/<backup name>.",
    ),
    source: str | None = SOURCE_OPTION,
    s3_endpoint: str | None = ENDPOINT_OPTION,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Restore a backup: its manifest and every part's checksum are verified first.

    Replaces the databases and media of every tenant in the backup. On the local target,
    stop the federation first (`karmayogi down`) and start it again after (`karmayogi up`).
    """
    from infra.backup import restore_backup
    from infra.backup.stores import split_location, store_for

    env = read_env()
    location, name = split_location(from_)
    store = store_for(location, endpoint_url=s3_endpoint)
    chosen = _source(source, env)
    if not yes:
        typer.confirm(
            f"Replace the databases and media of {chosen.deployment} with backup {name}?",
            abort=True,
        )
    manifest = restore_backup(chosen, store, name, _progress())
    typer.echo(
        f"Restored {location}/{name} ({', '.join(manifest.tenants) or 'Keycloak only'}, "
        f"taken {manifest.created_at})."
    )
