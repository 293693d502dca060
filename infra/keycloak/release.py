"""The pinned Keycloak release: obtained through Maven (or a repository URL), verified, unpacked.

Every target runs the same release: the local target in dev mode, the others built for
production (``infra/keycloak/production.py``). The archive is cached once per machine.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import httpx

from infra.errors import KitError

KEYCLOAK_VERSION = "26.4.7"
# SHA-256 of org.keycloak:keycloak-quarkus-dist:26.4.7:tar.gz, taken from the Maven Central
# artifact and cross-checked against its published .sha1 when it was pinned.
KEYCLOAK_SHA256 = "aca60ab72ae4d67adc6b8fe7fca5e08d16a6bb5e4a4f2ebb54050e3f5503fd2b"
# Keycloak 26.4 runs on Java 17 and 21; 25 only from 26.6. Newest first: preferred order.
SUPPORTED_JAVA = (21, 17)
ARTIFACT = "org.keycloak:keycloak-quarkus-dist"


class KeycloakRuntimeError(KitError):
    """The local Keycloak could not be installed, started or stopped."""


# --- obtaining the release -------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_archive(
    archive: Path,
    version: str = KEYCLOAK_VERSION,
    *,
    expected_sha256: str = KEYCLOAK_SHA256,
    mvn: str | None = None,
    repository_url: str | None = None,
) -> Path:
    """Put the verified release archive in the cache and return its path.

    Maven's own client is used where it is installed (it honours the operator's mirrors,
    proxies and local repository); otherwise the archive is downloaded from
    ``repository_url``, the base URL of a Maven repository.
    """
    if archive.exists() and sha256_of(archive) == expected_sha256:
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=archive.parent, prefix=".download-") as tmp:
        if mvn:
            fetched = _fetch_with_maven(mvn, version, Path(tmp))
        elif repository_url:
            fetched = _fetch_direct(repository_url, version, Path(tmp))
        else:
            raise KeycloakRuntimeError(
                "cannot obtain Keycloak: Maven is not installed (apt-get install maven) and "
                "KARMAYOGI_MAVEN_REPOSITORY is not set to a Maven repository URL"
            )
        actual = sha256_of(fetched)
        if actual != expected_sha256:
            raise KeycloakRuntimeError(
                f"checksum mismatch for {ARTIFACT}:{version}: expected sha256 "
                f"{expected_sha256}, got {actual}; the download was discarded"
            )
        os.replace(fetched, archive)
    return archive


def _fetch_with_maven(mvn: str, version: str, dest: Path) -> Path:
    coordinates = f"{ARTIFACT}:{version}:tar.gz"
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "dependency:copy",
            f"-Dartifact={coordinates}",
            f"-DoutputDirectory={dest}",
            "-Dmdep.useBaseVersion=true",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    files = list(dest.glob("*.tar.gz"))
    if result.returncode != 0 or not files:
        last = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
        raise KeycloakRuntimeError(
            f"Maven could not fetch {coordinates} (exit {result.returncode}): {last[0]}"
        )
    return files[0]


def _fetch_direct(repository_url: str, version: str, dest: Path) -> Path:
    group, artifact = ARTIFACT.split(":")
    name = f"{artifact}-{version}.tar.gz"
    url = f"{repository_url.rstrip('/')}/{group.replace('.', '/')}/{artifact}/{version}/{name}"
    target = dest / name
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=60.0) as response:
            response.raise_for_status()
            with target.open("wb") as handle:
                for chunk in response.iter_bytes(1 << 20):
                    handle.write(chunk)
    except httpx.HTTPError as exc:
        raise KeycloakRuntimeError(f"download of {name} failed: {exc}") from None
    return target


def archive_path(cache: Path, version: str = KEYCLOAK_VERSION) -> Path:
    """Where the verified release archive is cached (shared by every home on the machine)."""
    return cache / f"keycloak-quarkus-dist-{version}.tar.gz"


def install(
    cache: Path, dist: Path, *, env: dict[str, str], version: str = KEYCLOAK_VERSION
) -> Path:
    """Fetch (or reuse) the archive and unpack it as ``dist``. Idempotent.

    A production build (``kc.sh build``) rewrites files inside the release, so every server
    gets an unpacked copy of its own; the archive is what they share.
    """
    if (dist / "bin" / "kc.sh").exists():
        return dist
    archive = fetch_archive(
        archive_path(cache, version),
        version,
        mvn=shutil.which("mvn", path=env.get("PATH")),
        repository_url=env.get("KARMAYOGI_MAVEN_REPOSITORY"),
    )
    dist.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dist.parent, prefix=".unpack-") as tmp:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        unpacked = Path(tmp) / f"keycloak-{version}"
        if not (unpacked / "bin" / "kc.sh").exists():
            raise KeycloakRuntimeError(f"{archive.name} does not contain keycloak-{version}")
        os.replace(unpacked, dist)
    return dist


# --- Java --------------------------------------------------------------------------------


def java_major(java: Path) -> int | None:
    """The major version of a ``java`` binary, or None when it does not run."""
    try:
        result = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def find_java(env: dict[str, str], jvm_root: Path = Path("/usr/lib/jvm")) -> Path:
    """The home of a Java that this Keycloak supports, newest supported first."""
    candidates: list[Path] = []
    if env.get("JAVA_HOME"):
        candidates.append(Path(env["JAVA_HOME"]))
    if jvm_root.is_dir():
        candidates.extend(sorted(p for p in jvm_root.iterdir() if not p.is_symlink()))
    on_path = shutil.which("java", path=env.get("PATH"))
    if on_path:
        candidates.append(Path(on_path).resolve().parent.parent)
    found: dict[int, Path] = {}
    for home in candidates:
        major = java_major(home / "bin" / "java")
        if major in SUPPORTED_JAVA and major not in found:
            found[major] = home
    for major in SUPPORTED_JAVA:
        if major in found:
            return found[major]
    wanted = " or ".join(str(v) for v in sorted(SUPPORTED_JAVA))
    raise KeycloakRuntimeError(
        f"no Java {wanted} found for Keycloak {KEYCLOAK_VERSION}; "
        "install one: apt-get install openjdk-17-jre-headless"
    )
