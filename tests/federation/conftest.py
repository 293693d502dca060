"""Three deployments on this machine, each run by the kit from its own home, federating over
HTTPS by name: the hub (Karmayogi Bharat), Bihar and Rajasthan.

Each deployment is what an operator runs with ``KARMAYOGI_PUBLIC_NAMES=1 karmayogi up``: its
own Keycloak (dev mode, fixed hostname ``https://auth.<domain>``) and its own portal, on
loopback, known by the specs' names. The rig (``tests/rig``) puts a TLS proxy in front of all
six names with certificates from the session's CA, and every process of a deployment (the
kit, Keycloak, the portal, its syncs) resolves the names through a hosts file of the rig
(``NameMap.wrap``) and trusts the CA (``SSL_CERT_FILE``; Keycloak's ``truststore-paths``
through ``KARMAYOGI_CA_BUNDLE``). Bihar's and Rajasthan's specs name the hub as
``{code, url}``: nothing of the hub is in their folders, nor of them in the hub's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from infra.home import KitHome
from infra.targets.local.portals import portal_run_env
from infra.targets.local.render import portal_data_dir, portal_env_path
from tests.infra.examples import EXAMPLES
from tests.leftovers import kill_leftovers
from tests.rig import CertificateAuthority, NameMap, Route, TlsProxy
from tests.rig.names import local_address_env

KARMAYOGI = str(Path(sys.executable).with_name("karmayogi"))
HUB = "karmayogi-bharat"
DOMAINS = {HUB: "hub.test", "bihar": "bihar.test", "rajasthan": "rajasthan.test"}
HUB_URL = f"https://{DOMAINS[HUB]}"
# Two names per deployment (portal, Keycloak), each on an address of its own for the proxy.
ADDRESSES = {
    name: f"127.0.1.{40 + i}"
    for i, name in enumerate(
        name for domain in DOMAINS.values() for name in (domain, f"auth.{domain}")
    )
}


@dataclass
class Deployment:
    """One operator's deployment: a kit home, a folder of specs, the environment."""

    code: str
    home: Path
    folder: Path
    env: dict[str, str]
    names: NameMap

    @property
    def domain(self) -> str:
        return DOMAINS[self.code]

    @property
    def url(self) -> str:
        return f"https://{self.domain}"

    def karmayogi(
        self, *args: str, folder: bool = True, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        """Run the kit as this deployment's operator (``--tenants`` its folder)."""
        command = [KARMAYOGI, *args, *(["--tenants", str(self.folder)] if folder else [])]
        done = subprocess.run(
            self.names.wrap(command),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
            cwd=self.home,
        )
        assert "Traceback" not in done.stdout + done.stderr, done.stderr
        return done

    def ok(self, *args: str, folder: bool = True) -> str:
        done = self.karmayogi(*args, folder=folder)
        assert done.returncode == 0, f"karmayogi {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def status(self) -> dict[str, Any]:
        return dict(json.loads(self.ok("status", "--json")))

    def portal_python(self, code: str) -> str:
        """Run Python in the portal's Django (``manage.py shell -c``); its standard output."""
        home = KitHome.from_env(self.env)
        done = subprocess.run(
            self.names.wrap([sys.executable, "-m", "tenant_portal.manage", "shell", "-c", code]),
            env=portal_run_env(portal_env_path(self.code, home), self.env),
            cwd=portal_data_dir(self.code, home),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        # The shell may say what it imported first; the code's answer is the last line.
        return done.stdout.strip().splitlines()[-1]

    def origins(self) -> dict[str, int]:
        """The catalogue's listed courses per origin."""
        return dict(
            json.loads(
                self.portal_python(
                    "import json\n"
                    "from django.db.models import Count\n"
                    "from tenant_portal.catalogue.models import CatalogueEntry\n"
                    "rows = CatalogueEntry.objects.filter(retired=False)"
                    ".values('origin').annotate(n=Count('id'))\n"
                    "print(json.dumps({r['origin']: r['n'] for r in rows}))"
                )
            )
        )


def write_spec(folder: Path, name: str) -> None:
    """The example ``name`` at its test domain; a state's hub named by ``{code, url}``."""
    text = (EXAMPLES / f"{name}.yaml").read_text(encoding="utf-8")
    text = re.sub(r"domain: \S+", f"domain: {DOMAINS[name]}", text)
    text = text.replace(f"hub: {HUB}", f'hub: {{code: {HUB}, url: "{HUB_URL}"}}')
    (folder / "branding").mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    shutil.copy(EXAMPLES / "branding" / f"{name}.svg", folder / "branding" / f"{name}.svg")


def _routes(deployment: Deployment, ca: CertificateAuthority) -> list[Route]:
    """The proxy's routes to where the deployment's portal and Keycloak listen."""
    status = deployment.status()
    portal = next(t for t in status["tenants"] if t["code"] == deployment.code)
    keycloak = urlsplit(status["keycloak"]["url"])
    login = f"auth.{deployment.domain}"
    return [
        Route(
            deployment.domain,
            ADDRESSES[deployment.domain],
            *ca.issue([deployment.domain]),
            portal["portal_url"],
        ),
        Route(login, ADDRESSES[login], *ca.issue([login]), f"http://{keycloak.netloc}"),
    ]


@dataclass(frozen=True)
class Federation:
    hub: Deployment
    bihar: Deployment
    rajasthan: Deployment
    names: NameMap
    ca: CertificateAuthority
    root: Path


@pytest.fixture(scope="module")
def deployments(
    tmp_path_factory: pytest.TempPathFactory,
    rig_ca: CertificateAuthority,
    rig_name_map: Callable[[Mapping[str, str]], NameMap],
    rig_trust_env: dict[str, str],
    keycloak_dist: Path,
) -> Iterator[Federation]:
    """The three deployments up, behind the TLS proxy; nothing federated yet."""
    root = tmp_path_factory.mktemp("deployments")
    names = rig_name_map(ADDRESSES)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KARMAYOGI_", "KC_"))}
    made = {}
    for code in (HUB, "bihar", "rajasthan"):
        home, folder = root / code / "home", root / code / "tenants"
        write_spec(folder, code)
        env = base | rig_trust_env | local_address_env()
        env |= {
            "KARMAYOGI_HOME": str(home),
            "KARMAYOGI_CACHE": str(KitHome.from_env().cache),
            "KARMAYOGI_PUBLIC_NAMES": "1",
            "KARMAYOGI_CA_BUNDLE": str(rig_ca.bundle_path),
            "KARMAYOGI_KEYCLOAK_HEAP": "512m",
            # The tests sync when they mean to; the syncer's rounds would race them.
            "KARMAYOGI_SYNC_SECONDS": "86400",
        }
        home.mkdir(parents=True)
        made[code] = Deployment(code, home, folder, env, names)
    proxy = None
    try:
        for deployment in made.values():
            deployment.ok("up")
        routes = [r for d in made.values() for r in _routes(d, rig_ca)]
        proxy = TlsProxy(root / "proxy", routes)
        proxy.start()
        yield Federation(made[HUB], made["bihar"], made["rajasthan"], names, rig_ca, root)
    finally:
        if proxy is not None:
            proxy.stop()
        for deployment in made.values():
            deployment.karmayogi("down", folder=False)
            kill_leftovers(deployment.home)
