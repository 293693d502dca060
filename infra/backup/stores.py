"""Where backups are kept: a folder, or an S3 bucket under a prefix (any S3-compatible store).

Both keep the same layout: ``<root>/<backup name>/<part>`` and ``<root>/<backup name>/
manifest.json``. A part is stored whole or not at all (a folder's under a temporary name,
renamed when complete; S3 makes an object visible only when its upload completes), and the
manifest goes in last, so a backup whose manifest is there is complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from infra.backup.format import MANIFEST, BackupError
from infra.home import make_private_dir


class BackupStore(Protocol):
    """A destination holding many backups side by side."""

    @property
    def location(self) -> str:
        """The store as a person names it: a folder, or s3://bucket/prefix."""
        ...

    def open(self, backup: str) -> None:
        """Make room for a new backup; fails at once when the destination is unusable."""
        ...

    def put(self, backup: str, name: str, path: Path) -> None:
        """Store the file ``path`` as part ``name`` of ``backup``, whole or not at all."""
        ...

    def put_bytes(self, backup: str, name: str, data: bytes) -> None: ...

    def names(self) -> list[str]:
        """Every backup's name in this store, complete or not."""
        ...

    def read(self, backup: str, name: str) -> bytes | None:
        """A small file of a backup (its manifest), or None when it is not there."""
        ...

    def get(self, backup: str, name: str, target: Path) -> None:
        """Copy part ``name`` of ``backup`` to the file ``target``."""
        ...

    def delete(self, backup: str) -> None: ...


@dataclass(frozen=True)
class FolderStore:
    """Backups as folders under ``root`` (a local disk, an NFS mount); 0700 folders, 0600 files:
    they hold personal data."""

    root: Path

    @property
    def location(self) -> str:
        return str(self.root)

    def _folder(self, backup: str) -> Path:
        return self.root / backup

    def open(self, backup: str) -> None:
        folder = self._folder(backup)
        try:
            make_private_dir(self.root)
            folder.mkdir(mode=0o700)
        except FileExistsError:
            raise BackupError(f"{folder} already exists; run the backup again") from None
        except OSError as exc:
            raise BackupError(
                f"cannot write backups to {self.root}: {exc.strerror or exc}"
            ) from None

    @contextmanager
    def _writing(self, backup: str, name: str) -> Iterator[Path]:
        folder = self._folder(backup)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
        os.close(fd)
        try:
            yield Path(tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, folder / name)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise BackupError(f"cannot write {folder / name}: {exc.strerror or exc}") from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put(self, backup: str, name: str, path: Path) -> None:
        with self._writing(backup, name) as tmp, path.open("rb") as src, tmp.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)

    def put_bytes(self, backup: str, name: str, data: bytes) -> None:
        with self._writing(backup, name) as tmp:
            tmp.write_bytes(data)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def read(self, backup: str, name: str) -> bytes | None:
        try:
            return (self._folder(backup) / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BackupError(f"cannot read {self._folder(backup) / name}: {exc}") from None

    def get(self, backup: str, name: str, target: Path) -> None:
        source = self._folder(backup) / name
        try:
            shutil.copyfile(source, target)
        except FileNotFoundError:
            raise BackupError(f"{source} is missing") from None

    def delete(self, backup: str) -> None:
        shutil.rmtree(self._folder(backup))


def _client_error_code(exc: Exception) -> str:
    response: dict[str, Any] = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class S3Store:
    """Backups under ``s3://bucket/prefix/``; the client comes configured (endpoint,
    credentials from boto3's own chain, timeouts).

    With ``kms_key`` (an AWS tenant's key: its ID, ARN or alias), every object is written
    encrypted with that key (SSE-KMS), and a bucket whose default encryption is not that key
    is refused before anything is written: a tenant's backups go to its own bucket only.
    """

    bucket: str
    prefix: str  # "" or ends without "/"
    client: Any  # a boto3 S3 client (boto3 ships no type information)
    kms_key: str | None = None
    kms: Any = None  # a boto3 KMS client, with kms_key

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, backup: str, name: str = "") -> str:
        base = f"{self.prefix}/{backup}/" if self.prefix else f"{backup}/"
        return base + name

    @contextmanager
    def _calls(self, doing: str) -> Iterator[None]:
        """Turn boto3's failures into one line naming the bucket and what was being done."""
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            code = _client_error_code(exc)
            if code in ("NoSuchBucket", "404") and "bucket" in doing:
                raise BackupError(
                    f"{self.location}: bucket {self.bucket!r} does not exist"
                ) from None
            raise BackupError(f"{self.location}: {doing} failed ({code or exc})") from None
        except S3UploadFailedError as exc:
            raise BackupError(f"{self.location}: {doing} failed ({exc})") from None
        except BotoCoreError as exc:
            raise BackupError(f"{self.location}: {doing} failed ({exc})") from None

    def _encryption(self) -> dict[str, str]:
        if not self.kms_key:
            return {}
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key}

    def _check_key(self) -> None:
        """Refuse a bucket whose default encryption is not ``kms_key``."""
        from botocore.exceptions import ClientError

        with self._calls("reading the bucket's encryption"):
            try:
                config = self.client.get_bucket_encryption(Bucket=self.bucket)
                rules = config["ServerSideEncryptionConfiguration"]["Rules"]
            except ClientError as exc:
                if _client_error_code(exc) != "ServerSideEncryptionConfigurationNotFoundError":
                    raise
                rules = []
        defaults = [r.get("ApplyServerSideEncryptionByDefault", {}) for r in rules]
        keys = [d["KMSMasterKeyID"] for d in defaults if d.get("KMSMasterKeyID")]
        with self._calls(f"looking up the key {self.kms_key}"):
            wanted = self.kms.describe_key(KeyId=self.kms_key)["KeyMetadata"]["Arn"]
            found = {self.kms.describe_key(KeyId=k)["KeyMetadata"]["Arn"] for k in keys}
        if wanted not in found:
            raise BackupError(
                f"{self.location}: the bucket is not encrypted with {self.kms_key} by default "
                "(a tenant's backups go to its own bucket, under its own key)"
            )

    def open(self, backup: str) -> None:
        with self._calls("checking the bucket"):
            self.client.head_bucket(Bucket=self.bucket)
        if self.kms_key:
            self._check_key()
        if self.read(backup, MANIFEST) is not None or self._objects(backup):
            raise BackupError(f"{self.location}/{backup} already exists; run the backup again")

    def put(self, backup: str, name: str, path: Path) -> None:
        with self._calls(f"uploading {backup}/{name}"):
            self.client.upload_file(
                str(path), self.bucket, self._key(backup, name), ExtraArgs=self._encryption()
            )

    def put_bytes(self, backup: str, name: str, data: bytes) -> None:
        with self._calls(f"uploading {backup}/{name}"):
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(backup, name), Body=data, **self._encryption()
            )

    def names(self) -> list[str]:
        found: set[str] = set()
        base = f"{self.prefix}/" if self.prefix else ""
        with self._calls("listing the bucket"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base, Delimiter="/"
            )
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    found.add(common["Prefix"][len(base) :].rstrip("/"))
        return sorted(found)

    def read(self, backup: str, name: str) -> bytes | None:
        from botocore.exceptions import ClientError

        with self._calls(f"reading {backup}/{name}"):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self._key(backup, name))
            except ClientError as exc:
                if _client_error_code(exc) in ("NoSuchKey", "404"):
                    return None
                raise
            data: bytes = response["Body"].read()
            return data

    def get(self, backup: str, name: str, target: Path) -> None:
        with self._calls(f"downloading {backup}/{name}"):
            self.client.download_file(self.bucket, self._key(backup, name), str(target))

    def _objects(self, backup: str) -> list[str]:
        keys: list[str] = []
        with self._calls(f"listing {backup}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(backup)
            )
            for page in pages:
                keys += [item["Key"] for item in page.get("Contents", [])]
        return keys

    def delete(self, backup: str) -> None:
        keys = self._objects(backup)
        # The manifest first: a backup half-deleted is then incomplete, never "complete"
        # with parts missing.
        manifest = self._key(backup, MANIFEST)
        keys.sort(key=lambda k: k != manifest)
        with self._calls(f"deleting {backup}"):
            for start in range(0, len(keys), 1000):
                batch = [{"Key": k} for k in keys[start : start + 1000]]
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})


def split_location(location: str) -> tuple[str, str]:
    """``s3://b/p/20261205T211500Z`` or ``/backups/20261205T211500Z`` -> (store, backup name)."""
    trimmed = location.rstrip("/")
    head, _, name = trimmed.rpartition("/")
    if not name or not head or head == "s3:/":
        raise BackupError(f"{location!r} does not name a backup (…/<backup name>)")
    return head, name


def store_for(
    location: str,
    *,
    endpoint_url: str | None = None,
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
    attempts: int = 5,
    kms_key: str | None = None,
) -> BackupStore:
    """The store a ``--to`` value names: ``s3://bucket[/prefix]`` or a folder; ``kms_key``
    (S3 only) encrypts what is written with that KMS key."""
    if location.startswith("s3://"):
        bucket, _, prefix = location[len("s3://") :].partition("/")
        if not bucket:
            raise BackupError(f"{location!r}: name a bucket, as s3://bucket/prefix")
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": attempts, "mode": "standard"},
        )
        client = boto3.client("s3", endpoint_url=endpoint_url or None, config=config)
        kms = boto3.client("kms", endpoint_url=endpoint_url or None, config=config)
        return S3Store(bucket, prefix.strip("/"), client, kms_key or None, kms)
    if kms_key:
        raise BackupError(f"{location!r}: a KMS key is for backups to s3://bucket/prefix")
    if "://" in location:
        raise BackupError(f"{location!r}: a backup goes to a folder or to s3://bucket/prefix")
    return FolderStore(Path(location).expanduser().resolve())
