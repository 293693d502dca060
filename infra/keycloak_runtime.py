"""The local Keycloak: obtain a pinned release, start it in dev mode, stop it by PID.

Locally Keycloak runs ``start-dev`` with dev-file storage on loopback, its heap capped
(since Keycloak 24 the JVM would otherwise take a quarter to half of the machine), and all
its state under the kit's home. The first start creates a permanent master admin for the
operator (a 0600 JSON file) and a service-account client for the reconciler, then removes
the temporary bootstrap admin Keycloak made.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from infra.errors import KitError
from infra.home import KitHome, new_password, read_json, write_private_json
from infra.net import free_port, port_is_free
from infra.processes import (
    pid_alive,
    session_leaders_naming,
    spawn,
    stop_process_group,
    wait_for_http,
)

KEYCLOAK_VERSION = "26.4.7"
# SHA-256 of org.keycloak:keycloak-quarkus-dist:26.4.7:tar.gz, taken from the Maven Central
# artifact and cross-checked against its published .sha1 when it was pinned.
KEYCLOAK_SHA256 = "aca60ab72ae4d67adc6b8fe7fca5e08d16a6bb5e4a4f2ebb54050e3f5503fd2b"
# Keycloak 26.4 runs on Java 17 and 21; 25 only from 26.6. Newest first: preferred order.
SUPPORTED_JAVA = (21, 17)
ARTIFACT = "org.keycloak:keycloak-quarkus-dist"
DEFAULT_HEAP = "768m"

ADMIN_USERNAME = "karmayogi-admin"
RECONCILER_CLIENT_ID = "karmayogi-reconciler"
START_TIMEOUT = 240.0


class KeycloakRuntimeError(KitError):
    """The local Keycloak could not be installed, started or stopped."""


@dataclass(frozen=True)
class KeycloakPaths:
    """Files of the local Keycloak under one kit home."""

    home: KitHome
    version: str = KEYCLOAK_VERSION

    @property
    def archive(self) -> Path:
        return self.home.cache / f"keycloak-quarkus-dist-{self.version}.tar.gz"

    @property
    def dist(self) -> Path:
        return self.home.keycloak / f"keycloak-{self.version}"

    @property
    def state(self) -> Path:
        return self.home.keycloak / "state.json"

    @property
    def log(self) -> Path:
        return self.home.logs / "keycloak.log"

    @property
    def admin_credentials(self) -> Path:
        return self.home.secrets / "keycloak-admin.json"

    @property
    def reconciler_credentials(self) -> Path:
        return self.home.secrets / "keycloak-reconciler.json"

    @property
    def bootstrap_credentials(self) -> Path:
        return self.home.secrets / "keycloak-bootstrap.json"


@dataclass(frozen=True)
class KeycloakStatus:
    url: str | None
    management_url: str | None
    version: str
    pid: int | None
    healthy: bool
    admin_credentials_file: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "management_url": self.management_url,
            "version": self.version,
            "pid": self.pid,
            "healthy": self.healthy,
            "admin_credentials_file": self.admin_credentials_file,
        }


@dataclass(frozen=True)
class ServiceAccount:
    """Client credentials of the reconciler's service account in the master realm."""

    server_url: str
    client_id: str
    client_secret: str


# --- obtaining the release -------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_archive(
    paths: KeycloakPaths,
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
    archive = paths.archive
    if archive.exists() and sha256_of(archive) == expected_sha256:
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=archive.parent, prefix=".download-") as tmp:
        if mvn:
            fetched = _fetch_with_maven(mvn, paths.version, Path(tmp))
        elif repository_url:
            fetched = _fetch_direct(repository_url, paths.version, Path(tmp))
        else:
            raise KeycloakRuntimeError(
                "cannot obtain Keycloak: Maven is not installed (apt-get install maven) and "
                "KARMAYOGI_MAVEN_REPOSITORY is not set to a Maven repository URL"
            )
        actual = sha256_of(fetched)
        if actual != expected_sha256:
            raise KeycloakRuntimeError(
                f"checksum mismatch for {ARTIFACT}:{paths.version}: expected sha256 "
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


def install(paths: KeycloakPaths, *, env: dict[str, str]) -> Path:
    """Fetch (or reuse) the archive and unpack it into the kit's home. Idempotent."""
    if (paths.dist / "bin" / "kc.sh").exists():
        return paths.dist
    archive = fetch_archive(
        paths,
        mvn=shutil.which("mvn", path=env.get("PATH")),
        repository_url=env.get("KARMAYOGI_MAVEN_REPOSITORY"),
    )
    paths.dist.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=paths.dist.parent, prefix=".unpack-") as tmp:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        unpacked = Path(tmp) / f"keycloak-{paths.version}"
        if not (unpacked / "bin" / "kc.sh").exists():
            raise KeycloakRuntimeError(f"{archive.name} does not contain keycloak-{paths.version}")
        os.replace(unpacked, paths.dist)
    return paths.dist


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


# --- the server --------------------------------------------------------------------------


class LocalKeycloak:
    """One local Keycloak under one kit home."""

    def __init__(self, home: KitHome, env: dict[str, str], heap: str = DEFAULT_HEAP) -> None:
        self.paths = KeycloakPaths(home)
        self.env = env
        self.heap = heap

    # state ------------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return read_json(self.paths.state) or {}

    def _urls(self, state: dict[str, Any]) -> tuple[str | None, str | None]:
        if not state.get("port"):
            return None, None
        host = state.get("host", "127.0.0.1")
        return f"http://{host}:{state['port']}", f"http://{host}:{state['management_port']}"

    def running_pid(self) -> int | None:
        pid = self._state().get("pid")
        if isinstance(pid, int) and pid_alive(pid, str(self.paths.dist)):
            return pid
        return None

    def healthy(self) -> bool:
        _, management = self._urls(self._state())
        if management is None or self.running_pid() is None:
            return False
        try:
            response = httpx.get(f"{management}/health/ready", timeout=3.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def status(self) -> KeycloakStatus:
        state = self._state()
        pid = self.running_pid()
        url, management = self._urls(state) if pid else (None, None)
        credentials = self.paths.admin_credentials
        return KeycloakStatus(
            url=url,
            management_url=management,
            version=self.paths.version,
            pid=pid,
            healthy=self.healthy() if pid else False,
            admin_credentials_file=str(credentials) if credentials.exists() else None,
        )

    @property
    def url(self) -> str:
        url, _ = self._urls(self._state())
        if url is None:
            raise KeycloakRuntimeError("Keycloak has not been started: run `karmayogi up`")
        return url

    # lifecycle --------------------------------------------------------------------------

    def install(self) -> Path:
        return install(self.paths, env=self.env)

    def start(self, timeout: float = START_TIMEOUT) -> KeycloakStatus:
        """Start Keycloak (installing it first) and wait until it is ready. Idempotent."""
        return self.finish_start(self.launch(), timeout)

    def finish_start(
        self, process: subprocess.Popen[bytes] | None, timeout: float = START_TIMEOUT
    ) -> KeycloakStatus:
        """Wait for a :meth:`launch` to be ready and make sure the kit's accounts exist."""
        self._wait_ready(timeout, process)
        self._ensure_operator_accounts()
        return self.status()

    def launch(self) -> subprocess.Popen[bytes] | None:
        """Start the server process unless it runs, without waiting for it: its URL is
        known as soon as this returns, so portals can be configured while it boots."""
        if self.running_pid() is not None:
            return None
        dist = self.install()
        themes = f"--spi-theme--folder--dir={self.paths.home.themes}"
        # A Keycloak of this home that no state file names holds its port and database lock.
        for orphan in session_leaders_naming(str(dist), f"{themes} "):
            stop_process_group(orphan)
        java_home = find_java(self.env)
        state = self._state()
        host = "127.0.0.1"
        port, management_port = state.get("port"), state.get("management_port")
        if not (isinstance(port, int) and port_is_free(port)):
            port = free_port(host)
        if not (isinstance(management_port, int) and port_is_free(management_port)):
            management_port = free_port(host)
        self.paths.home.themes.mkdir(parents=True, exist_ok=True)
        self.paths.log.parent.mkdir(parents=True, exist_ok=True)

        env = {k: v for k, v in self.env.items() if not k.startswith(("KC_", "KEYCLOAK_"))}
        env |= {"JAVA_HOME": str(java_home), "JAVA_OPTS_KC_HEAP": f"-Xms64m -Xmx{self.heap}"}
        if not self.paths.admin_credentials.exists():
            bootstrap = read_json(self.paths.bootstrap_credentials)
            if bootstrap is None:
                bootstrap = {"username": f"bootstrap-{new_password(6)}", "password": new_password()}
                write_private_json(self.paths.bootstrap_credentials, bootstrap)
            env["KC_BOOTSTRAP_ADMIN_USERNAME"] = bootstrap["username"]
            env["KC_BOOTSTRAP_ADMIN_PASSWORD"] = bootstrap["password"]
        command = [
            str(dist / "bin" / "kc.sh"),
            "start-dev",
            f"--http-host={host}",
            f"--http-port={port}",
            f"--http-management-port={management_port}",
            "--health-enabled=true",
            themes,
        ]

        def record(pid: int) -> None:
            write_private_json(
                self.paths.state,
                {
                    "pid": pid,
                    "host": host,
                    "port": port,
                    "management_port": management_port,
                    "version": self.paths.version,
                    "java_home": str(java_home),
                },
            )

        return spawn(command, self.paths.log, record, env=env, cwd=dist)

    def _wait_ready(self, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
        _, management = self._urls(self._state())
        wait_for_http(
            f"{management}/health/ready",
            name="Keycloak",
            log=self.paths.log,
            timeout=timeout,
            process=process,
            error=KeycloakRuntimeError,
        )

    def stop(self) -> bool:
        """Stop Keycloak by its PID; True if it was running. Data is kept."""
        pid = self.running_pid()
        if pid is None:
            return False
        stop_process_group(pid)
        state = self._state()
        state.pop("pid", None)
        write_private_json(self.paths.state, state)
        return True

    # accounts ---------------------------------------------------------------------------

    def service_account(self) -> ServiceAccount:
        data = read_json(self.paths.reconciler_credentials)
        if data is None:
            raise KeycloakRuntimeError(
                f"{self.paths.reconciler_credentials} is missing: start Keycloak with "
                "`karmayogi keycloak start` to create the reconciler's account"
            )
        return ServiceAccount(self.url, data["client_id"], data["client_secret"])

    def _ensure_operator_accounts(self) -> None:
        """Create the permanent admin and the reconciler's client once, then drop bootstrap."""
        if self.paths.admin_credentials.exists() and self.paths.reconciler_credentials.exists():
            return
        bootstrap = read_json(self.paths.bootstrap_credentials)
        if bootstrap is None:
            raise KeycloakRuntimeError(
                f"operator accounts are incomplete and {self.paths.bootstrap_credentials} is "
                f"gone; stop Keycloak and delete {self.paths.home.keycloak} to start it afresh"
            )
        with _admin_session(self.url, bootstrap["username"], bootstrap["password"]) as admin:
            admin_role = _get(admin, "/admin/realms/master/roles/admin")
            if not self.paths.admin_credentials.exists():
                password = new_password()
                user_id = _ensure_user(admin, ADMIN_USERNAME)
                _check(
                    admin.put(
                        f"/admin/realms/master/users/{user_id}/reset-password",
                        json={"type": "password", "value": password, "temporary": False},
                    ),
                    "set the operator admin's password",
                )
                _check(
                    admin.post(
                        f"/admin/realms/master/users/{user_id}/role-mappings/realm",
                        json=[admin_role],
                    ),
                    "grant the operator admin the admin role",
                )
                write_private_json(
                    self.paths.admin_credentials, {"username": ADMIN_USERNAME, "password": password}
                )
            if not self.paths.reconciler_credentials.exists():
                secret = _ensure_reconciler_client(admin, admin_role)
                write_private_json(
                    self.paths.reconciler_credentials,
                    {"client_id": RECONCILER_CLIENT_ID, "client_secret": secret},
                )
        # The temporary admin goes, removed by the permanent one (not by itself).
        operator = read_json(self.paths.admin_credentials) or {}
        with _admin_session(self.url, operator["username"], operator["password"]) as admin:
            query = {"username": bootstrap["username"], "exact": "true"}
            for user in _get(admin, "/admin/realms/master/users", **query):
                _check(
                    admin.delete(f"/admin/realms/master/users/{user['id']}"),
                    "remove the temporary bootstrap admin",
                )
        self.paths.bootstrap_credentials.unlink(missing_ok=True)


@contextlib.contextmanager
def _admin_session(url: str, username: str, password: str) -> Iterator[httpx.Client]:
    """An httpx client authenticated as a master-realm user (bootstrap only)."""
    response = httpx.post(
        f"{url}/realms/master/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": "admin-cli",
            "username": username,
            "password": password,
        },
        timeout=30.0,
    )
    if response.status_code != 200:
        raise KeycloakRuntimeError(
            f"the bootstrap admin could not sign in to Keycloak (HTTP {response.status_code})"
        )
    token = response.json()["access_token"]
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
    ) as client:
        yield client


def _check(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code >= 400:
        raise KeycloakRuntimeError(f"could not {what}: HTTP {response.status_code}")
    return response


def _get(client: httpx.Client, path: str, **params: str) -> Any:
    return _check(client.get(path, params=params), f"read {path}").json()


def _ensure_user(admin: httpx.Client, username: str) -> str:
    for user in _get(admin, "/admin/realms/master/users", username=username, exact="true"):
        return str(user["id"])
    _check(
        admin.post("/admin/realms/master/users", json={"username": username, "enabled": True}),
        f"create the master user {username}",
    )
    return str(_get(admin, "/admin/realms/master/users", username=username, exact="true")[0]["id"])


def _ensure_reconciler_client(admin: httpx.Client, admin_role: dict[str, Any]) -> str:
    found = _get(admin, "/admin/realms/master/clients", clientId=RECONCILER_CLIENT_ID)
    if not found:
        _check(
            admin.post(
                "/admin/realms/master/clients",
                json={
                    "clientId": RECONCILER_CLIENT_ID,
                    "name": "Karmayogi kit reconciler",
                    "description": "Service account the kit's identity reconciler signs in as",
                    "protocol": "openid-connect",
                    "publicClient": False,
                    "serviceAccountsEnabled": True,
                    "standardFlowEnabled": False,
                    "directAccessGrantsEnabled": False,
                    # An admin token otherwise lists every realm's roles and grows with each
                    # realm created (keycloak#26883).
                    "attributes": {"client.use.lightweight.access.token.enabled": "true"},
                },
            ),
            "create the reconciler's client",
        )
        found = _get(admin, "/admin/realms/master/clients", clientId=RECONCILER_CLIENT_ID)
    client_uuid = found[0]["id"]
    account = _get(admin, f"/admin/realms/master/clients/{client_uuid}/service-account-user")
    _check(
        admin.post(
            f"/admin/realms/master/users/{account['id']}/role-mappings/realm", json=[admin_role]
        ),
        "grant the reconciler the admin role",
    )
    secret = _get(admin, f"/admin/realms/master/clients/{client_uuid}/client-secret")
    return str(secret["value"])
