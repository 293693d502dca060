"""What the federation tests share: a hub realm with federation clients, tokens from it, and
portal instances run as separate processes, each with its own PostgreSQL database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from identity.desired import Federation
from identity.reconciler import Reconciler
from infra.net import free_port
from infra.targets.local.keycloak import LocalKeycloak
from infra.targets.local.portals import PortalError
from infra.targets.local.processes import wait_for_http
from infra.targets.local.runtime import admin_api
from tests.postgres import PostgresServer
from tests.tenant_portal.conftest import realm_for_portal

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Realms:
    keycloak_url: str
    hub: str
    tenants: tuple[str, ...]

    @property
    def issuer(self) -> str:
        return f"{self.keycloak_url}/realms/{self.hub}"

    def realm(self, name: str) -> str:
        """The full code of the tenant realm made for ``name`` (codes carry a suffix)."""
        return next(code for code in (self.hub, *self.tenants) if code.startswith(f"{name}-"))

    def token(self, name: str) -> str:
        """A client-credentials token of the hub realm for ``name``'s federation client."""
        code = self.realm(name)
        secret = f"federation-{code}"  # what realm_for_portal gives each federation client
        response = httpx.post(
            f"{self.issuer}/protocol/openid-connect/token",
            data={"grant_type": "client_credentials"},
            auth=(f"federation-{code}", secret),
        )
        response.raise_for_status()
        return str(response.json()["access_token"])


@contextmanager
def hub_realms(keycloak: LocalKeycloak, *tenants: str) -> Iterator[Realms]:
    """A hub realm holding a ``federation-<code>`` client for the hub and each tenant."""
    suffix = uuid.uuid4().hex[:6]
    hub = realm_for_portal(f"hub-{suffix}", "http://127.0.0.1:9")
    states = [realm_for_portal(f"{t}-{suffix}", "http://127.0.0.1:9") for t in tenants]
    api = admin_api(keycloak)
    Reconciler(api, Federation(keycloak.url, (hub, *states), hub)).apply()
    try:
        yield Realms(keycloak.url, hub.code, tuple(s.code for s in states))
    finally:
        for code in (*(s.code for s in states), hub.code):
            api.delete(f"/{code}", "cleanup")


def master_token(keycloak: LocalKeycloak) -> str:
    """A token of another realm (master, the kit's reconciler account): never a feed token."""
    secrets = json.loads((keycloak.paths.home.secrets / "keycloak-reconciler.json").read_text())
    response = httpx.post(
        f"{keycloak.url}/realms/master/protocol/openid-connect/token",
        data={"grant_type": "client_credentials"},
        auth=(secrets["client_id"], secrets["client_secret"]),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


LANGUAGES = [
    {"code": "hi", "name": "Hindi", "name_local": "हिन्दी", "bidi": False},
    {"code": "en", "name": "English", "name_local": "English", "bidi": False},
]


@dataclass
class Instance:
    """A portal run as its own gunicorn process on its own loopback address and database."""

    code: str
    url: str
    env: dict[str, str]
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tenant_portal.manage", *args],
            env=self.env,
            cwd=self.data_dir,
            capture_output=True,
            text=True,
            check=check,
            timeout=600,
        )

    def start(self) -> None:
        host, port = self.url.removeprefix("http://").split(":")
        log = (self.data_dir / "gunicorn.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "tenant_portal.wsgi:application",
                f"--bind={host}:{port}",
                "--workers=1",
                "--threads=4",
                "--graceful-timeout=2",
                "--no-control-socket",  # one path per user, shared by every test's portals
            ],
            env=self.env,
            cwd=self.data_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_http(
            f"{self.url}/healthz",
            name=self.code,
            log=self.data_dir / "gunicorn.log",
            timeout=60,
            process=self.process,
            error=PortalError,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)
        self.process = None


def instance_env(
    code: str,
    *,
    url: str,
    database_url: str,
    data_dir: Path,
    federation: dict[str, Any],
    domain: str,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KARMAYOGI_", "DJANGO_"))}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "DJANGO_SETTINGS_MODULE": "tenant_portal.settings.dev",
            "KARMAYOGI_TENANT": code,
            "KARMAYOGI_SITE_NAME": f"{code} portal",
            "KARMAYOGI_DOMAIN": domain,
            "KARMAYOGI_PORTAL_URL": url,
            "KARMAYOGI_DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url,
            "KARMAYOGI_LANGUAGES": json.dumps(LANGUAGES, ensure_ascii=False),
            "KARMAYOGI_FEDERATION": json.dumps(federation),
            "DJANGO_ALLOWED_HOSTS": "*",
            "KARMAYOGI_LOG_LEVEL": "WARNING",
        }
    )
    return env


def new_instance(
    postgres: PostgresServer,
    tmp: Path,
    code: str,
    host: str,
    federation: dict[str, Any],
    *,
    port: int | None = None,
) -> Instance:
    database = f"fed_{code.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
    postgres.create_database(database)
    data_dir = tmp / code
    data_dir.mkdir(parents=True)
    url = f"http://{host}:{port or free_port(host)}"
    env = instance_env(
        code,
        url=url,
        database_url=postgres.url(database),
        data_dir=data_dir,
        federation=federation,
        domain=f"{code}.example.org",
    )
    return Instance(code, url, env, data_dir)
