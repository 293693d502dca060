"""The local Keycloak: obtain a pinned release, start it in dev mode, stop it by PID.

Locally Keycloak runs ``start-dev`` with dev-file storage on loopback, its heap capped
(since Keycloak 24 the JVM would otherwise take a quarter to half of the machine), and all
its state under the kit's home, 0600 in 0700 folders (it runs with umask 077).

The first start bootstraps as production does: Keycloak makes a temporary service-account
client (``KC_BOOTSTRAP_ADMIN_CLIENT_*``, never a user with a password), with which the kit
creates a permanent master admin for the operator (a 0600 JSON file) and a service-account
client for the reconciler, turns on brute-force protection in the master realm and refuses
``admin-cli``'s password grant there; the reconciler then deletes the bootstrap client.
Every later start checks the last two, so a home made by an older kit is hardened too.

Without a fixed hostname Keycloak takes its URLs from each request's ``Host`` header; the
local Keycloak has none, and listens on loopback only, where no other machine can send one.
With public names (``infra/targets/local/render.py``) it gets the fixed hostname
``https://<identity.loginDomain>`` and trusts the proxy's ``X-Forwarded-*`` headers; the kit
keeps calling its admin API on loopback (``hostname-backchannel-dynamic``). Set
``KARMAYOGI_CA_BUNDLE`` to a PEM file when the hubs it brokers to use a private CA.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from infra.home import (
    KitHome,
    make_private,
    make_private_dir,
    new_password,
    read_json,
    write_private_json,
)
from infra.keycloak.accounts import (
    OperatorAccounts,
    ServiceAccount,
    bootstrap_operator_accounts,
    client_token,
)
from infra.keycloak.production import DEFAULT_BOOTSTRAP_CLIENT_ID, bootstrap_env
from infra.keycloak.release import (
    KEYCLOAK_VERSION,
    KeycloakRuntimeError,
    archive_path,
    find_java,
    install,
)
from infra.net import free_port, port_is_free
from infra.targets.local.processes import (
    pid_alive,
    session_leaders_naming,
    spawn,
    stop_process_group,
    wait_for_http,
)
from infra.targets.local.render import public_keycloak_url

DEFAULT_HEAP = "768m"
CA_BUNDLE_ENV = "KARMAYOGI_CA_BUNDLE"

START_TIMEOUT = 240.0


@dataclass(frozen=True)
class KeycloakPaths:
    """Files of the local Keycloak under one kit home."""

    home: KitHome
    version: str = KEYCLOAK_VERSION

    @property
    def archive(self) -> Path:
        return archive_path(self.home.cache, self.version)

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
        """The temporary bootstrap client's id and secret, until the first start is done."""
        return self.home.secrets / "keycloak-bootstrap.json"

    @property
    def vault(self) -> Path:
        """Keycloak's file vault: the secrets realms read as ``${vault.<name>}``."""
        return self.home.keycloak / "vault"

    @property
    def truststore(self) -> Path:
        """The providers' CAs (``<code>.pem`` per tenant), read by Keycloak when it starts."""
        return self.home.keycloak / "truststore"

    @property
    def store(self) -> Path:
        """Keycloak's dev-file store (its H2 database), inside the unpacked release."""
        return self.dist / "data"


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
        return install(
            self.paths.home.cache, self.paths.dist, env=self.env, version=self.paths.version
        )

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
        self.paths.home.create()
        make_private_dir(self.paths.home.keycloak)
        # A store an older kit's Keycloak made (without umask 077) becomes private too.
        make_private(self.paths.store)
        self.paths.home.themes.mkdir(parents=True, exist_ok=True)
        make_private_dir(self.paths.vault)
        make_private_dir(self.paths.truststore)

        env = {k: v for k, v in self.env.items() if not k.startswith(("KC_", "KEYCLOAK_"))}
        env |= {"JAVA_HOME": str(java_home), "JAVA_OPTS_KC_HEAP": f"-Xms64m -Xmx{self.heap}"}
        if not self._accounts_stored():
            # Keycloak makes this client only when it creates the master realm, on the first
            # start; on later starts the variables are ignored.
            bootstrap = read_json(self.paths.bootstrap_credentials)
            if bootstrap is None or "client_id" not in bootstrap:
                bootstrap = {
                    "client_id": DEFAULT_BOOTSTRAP_CLIENT_ID,
                    "client_secret": new_password(),
                }
                write_private_json(self.paths.bootstrap_credentials, bootstrap)
            env |= bootstrap_env(bootstrap["client_id"], bootstrap["client_secret"])
        command = [
            str(dist / "bin" / "kc.sh"),
            "start-dev",
            f"--http-host={host}",
            f"--http-port={port}",
            f"--http-management-port={management_port}",
            "--health-enabled=true",
            themes,
            # Identity providers' and directories' secrets: files the reconciler writes from
            # the secret store, so the admin API only carries ${vault.<name>}.
            "--vault=file",
            f"--vault-dir={self.paths.vault}",
        ]
        public = public_keycloak_url(self.paths.home)
        if public:
            command += [
                f"--hostname={public}",
                "--proxy-headers=xforwarded",
                "--hostname-backchannel-dynamic=true",
            ]
        # The CAs of the tenants' providers (a folder Keycloak scans for PEM files), and the
        # operator's own bundle for hubs behind a private CA.
        trusted = [str(self.paths.truststore)]
        if self.env.get(CA_BUNDLE_ENV):
            trusted.append(self.env[CA_BUNDLE_ENV])
        command.append(f"--truststore-paths={','.join(trusted)}")

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

    def restart(self, timeout: float = START_TIMEOUT) -> KeycloakStatus:
        """Stop and start Keycloak (it reads its truststore only when it starts)."""
        self.stop()
        return self.start(timeout)

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

    def _accounts_stored(self) -> bool:
        return self.paths.admin_credentials.exists() and self.paths.reconciler_credentials.exists()

    def _ensure_operator_accounts(self) -> None:
        """Replace the bootstrap client with the kit's accounts once; on every start, check
        the master realm's brute-force protection and ``admin-cli``'s refused password grant
        (a home an older kit bootstrapped with a password has neither)."""
        url = self.url
        bootstrap = read_json(self.paths.bootstrap_credentials) or {}
        client_id = str(bootstrap.get("client_id") or DEFAULT_BOOTSTRAP_CLIENT_ID)
        secret = str(bootstrap.get("client_secret") or "")
        if self._accounts_stored():
            # Also removes a bootstrap client a run interrupted after storing the accounts left.
            admin = read_json(self.paths.admin_credentials) or {}
            existing = OperatorAccounts(
                admin_username=admin["username"],
                admin_password=admin["password"],
                reconciler=self.service_account(),
            )
            bootstrap_operator_accounts(url, client_id, secret, existing=existing)
            self.paths.bootstrap_credentials.unlink(missing_ok=True)
            return
        if not (secret and client_token(url, client_id, secret)):
            raise KeycloakRuntimeError(
                f"the operator accounts are incomplete and Keycloak refuses the bootstrap "
                f"client of {self.paths.bootstrap_credentials} (Keycloak makes it on its first "
                f"start only); stop Keycloak and delete {self.paths.home.keycloak} to start "
                "it afresh"
            )

        def store(accounts: OperatorAccounts) -> None:
            reconciler = accounts.reconciler
            write_private_json(
                self.paths.reconciler_credentials,
                {"client_id": reconciler.client_id, "client_secret": reconciler.client_secret},
            )
            write_private_json(
                self.paths.admin_credentials,
                {"username": accounts.admin_username, "password": accounts.admin_password},
            )

        bootstrap_operator_accounts(url, client_id, secret, store=store)
        self.paths.bootstrap_credentials.unlink(missing_ok=True)
