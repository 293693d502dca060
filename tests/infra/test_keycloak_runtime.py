"""Obtaining, verifying and running the pinned Keycloak release."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from infra.home import KitHome
from infra.keycloak.release import (
    ARTIFACT,
    KEYCLOAK_SHA256,
    KEYCLOAK_VERSION,
    KeycloakRuntimeError,
    fetch_archive,
    find_java,
    java_major,
)
from infra.targets.local.keycloak import KeycloakPaths, LocalKeycloak


@pytest.fixture(scope="module")
def maven_repository(
    keycloak_dist: Path, kit_home: KitHome, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A Maven-layout repository on loopback serving the cached release archive."""
    root = tmp_path_factory.mktemp("maven-repo")
    group, artifact = ARTIFACT.split(":")
    folder = root / group.replace(".", "/") / artifact / KEYCLOAK_VERSION
    folder.mkdir(parents=True)
    archive = KeycloakPaths(kit_home).archive
    (folder / archive.name).symlink_to(archive)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_direct_download_is_verified_and_cached(maven_repository: str, tmp_path: Path) -> None:
    paths = KeycloakPaths(KitHome(root=tmp_path / "home", cache=tmp_path / "cache"))
    archive = fetch_archive(paths.archive, mvn=None, repository_url=maven_repository)
    assert archive == paths.archive and archive.stat().st_size > 100_000_000
    # A second call reuses the verified file without downloading.
    assert (
        fetch_archive(paths.archive, mvn=None, repository_url="http://127.0.0.1:9/unreachable")
        == archive
    )


def test_checksum_mismatch_discards_the_download(maven_repository: str, tmp_path: Path) -> None:
    paths = KeycloakPaths(KitHome(root=tmp_path / "home", cache=tmp_path / "cache"))
    with pytest.raises(KeycloakRuntimeError) as error:
        fetch_archive(
            paths.archive, mvn=None, repository_url=maven_repository, expected_sha256="0" * 64
        )
    message = str(error.value)
    assert "checksum mismatch" in message and "\n" not in message
    assert not paths.archive.exists()
    assert list(paths.archive.parent.iterdir()) == []


def test_failed_download_says_what_failed(tmp_path: Path) -> None:
    paths = KeycloakPaths(KitHome(root=tmp_path / "home", cache=tmp_path / "cache"))
    with pytest.raises(KeycloakRuntimeError, match=r"download of keycloak-quarkus-dist-.* failed"):
        fetch_archive(paths.archive, mvn=None, repository_url="http://127.0.0.1:9")


def test_without_maven_or_repository_says_what_to_install(tmp_path: Path) -> None:
    paths = KeycloakPaths(KitHome(root=tmp_path / "home", cache=tmp_path / "cache"))
    with pytest.raises(
        KeycloakRuntimeError, match=r"apt-get install maven.*KARMAYOGI_MAVEN_REPOSITORY"
    ):
        fetch_archive(paths.archive, mvn=None, repository_url=None)


def test_maven_fetch_is_verified(tmp_path: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        pytest.skip("Maven is not installed (the direct-download tests cover this path)")
    paths = KeycloakPaths(KitHome(root=tmp_path / "home", cache=tmp_path / "cache"))
    assert fetch_archive(paths.archive, mvn=mvn, repository_url=None).exists()


def test_java_is_chosen_from_the_supported_versions(tmp_path: Path) -> None:
    home = find_java({"PATH": "/usr/bin:/bin"})
    assert java_major(home / "bin" / "java") in (17, 21)


def test_missing_java_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(
        KeycloakRuntimeError, match=r"no Java 17 or 21 found.*apt-get install openjdk"
    ):
        find_java({"PATH": str(tmp_path)}, jvm_root=tmp_path / "no-jvms")


def test_a_java_keycloak_does_not_support_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "jvm" / "java-8" / "bin"
    fake.mkdir(parents=True)
    (fake / "java").write_text("#!/bin/sh\necho 'openjdk version \"1.8.0_392\"' >&2\n")
    (fake / "java").chmod(0o755)
    assert java_major(fake / "java") == 8
    with pytest.raises(KeycloakRuntimeError, match="no Java"):
        find_java({"PATH": str(tmp_path)}, jvm_root=tmp_path / "jvm")


def test_the_release_is_pinned() -> None:
    assert KEYCLOAK_VERSION.startswith("26.") and len(KEYCLOAK_SHA256) == 64


def test_stop_and_start_keep_the_realms(keycloak: LocalKeycloak) -> None:
    """`down` then `up`: the same PID file, ports and data; realms survive a restart."""
    from infra.targets.local.runtime import admin_api

    api = admin_api(keycloak)
    realm = "restart-check"
    if api.get(f"/{realm}", "probe") is None:
        api.post("", {"realm": realm, "enabled": True}, "create")
    url = keycloak.url
    old_pid = keycloak.running_pid()
    assert keycloak.stop() is True
    assert keycloak.running_pid() is None and keycloak.status().healthy is False
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/realms/master", timeout=2)
    assert keycloak.stop() is False

    status = keycloak.start()
    assert status.healthy and status.pid != old_pid
    assert keycloak.url == url, "the same port is reused when it is free"
    api = admin_api(keycloak)
    assert api.get(f"/{realm}", "after restart") is not None
    api.delete(f"/{realm}", "cleanup")
