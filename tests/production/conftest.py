"""A production-mode Keycloak for the session: built, started on PostgreSQL, bootstrapped.

It runs exactly what the kit renders for the non-local targets: its own unpacked release (a
build rewrites files inside it, so it never shares the dev fixture's), ``conf/keycloak.conf``
from ``render_conf``, the tenants' theme JAR in ``providers/``, ``kc.sh build`` then
``kc.sh start --optimized`` with the secrets in the environment, and the kit's operator
accounts made from the temporary bootstrap client. Its public hostname is
``https://auth.federation.test``; the TLS proxy and the name resolution in front of it come
from ``tests/rig``. Tests reach it straight on its HTTP port.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from identity.admin import AdminAPI, Credentials
from identity.desired import Federation
from identity.reconciler import Reconciler
from identity.themes import LoginTheme, theme_jar
from infra.home import KitHome
from infra.keycloak import production
from infra.keycloak.accounts import OperatorAccounts, ServiceAccount, bootstrap_operator_accounts
from infra.keycloak.release import find_java, install
from infra.net import free_port
from infra.render.tenant import federation_of
from infra.targets.local.processes import stop_process_group, tail, wait_for_http
from tests.postgres import PostgresServer
from tests.production.tenants import BIHAR_DOMAIN, LOGIN_DOMAIN, ProductionTenants
from tests.production.tenants import production_tenants as render_production_tenants
from tests.rig import CertificateAuthority, NameMap, Route, TlsProxy

HOSTNAME = f"https://{LOGIN_DOMAIN}"
ADDRESS = "127.0.1.20"  # Keycloak, and the TLS proxy in front of it on :443
BIHAR_ADDRESS = "127.0.1.21"  # Bihar's portal, and its TLS proxy on :443
BUILD_TIMEOUT = 300
START_TIMEOUT = 300.0
LOGO = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle r="5"/></svg>\n'


@dataclass(frozen=True)
class ProductionServer:
    """The running server and what the kit would keep about it."""

    url: str  # the internal address: http://127.0.1.20:<port>
    hostname: str  # the public URL, the tokens' issuer base
    management_url: str
    accounts: OperatorAccounts
    bootstrap_client_id: str
    bootstrap_client_secret: str
    db_password: str
    conf: str
    themes: tuple[LoginTheme, ...]
    dist: Path
    log: Path

    @property
    def reconciler(self) -> ServiceAccount:
        return self.accounts.reconciler

    @property
    def tenant_codes(self) -> tuple[str, ...]:
        return tuple(t.name.removeprefix("karmayogi-") for t in self.themes)


@pytest.fixture(scope="session")
def production_names(
    rig_name_map: Callable[[Mapping[str, str]], NameMap],
) -> NameMap:
    """The production deployment's names, each on an address of its own (127.0.1.20 up)."""
    return rig_name_map({LOGIN_DOMAIN: ADDRESS, BIHAR_DOMAIN: BIHAR_ADDRESS})


@pytest.fixture(scope="session")
def production_tenants(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer
) -> ProductionTenants:
    """The example hub and Bihar, rendered for production (see tests/production/tenants.py)."""
    return render_production_tenants(tmp_path_factory.mktemp("production-tenants"), postgres.url)


@pytest.fixture(scope="session")
def production_keycloak(
    tmp_path_factory: pytest.TempPathFactory,
    postgres: PostgresServer,
    production_tenants: ProductionTenants,
    production_names: NameMap,
    rig_ca: CertificateAuthority,
) -> Iterator[ProductionServer]:
    root = tmp_path_factory.mktemp("kc-production")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KC_", "KEYCLOAK_"))}
    dist = install(KitHome.from_env().cache, root / "dist", env=env)
    database = f"keycloak_{uuid.uuid4().hex[:8]}"
    postgres.create_database(database)
    port, management_port = free_port(ADDRESS), free_port(ADDRESS)
    kc = production.ProductionKeycloak(
        hostname=HOSTNAME,
        database=production.Database(
            host=postgres.host,
            port=postgres.port,
            name=database,
            username=postgres.user,
            password=production.SecretRef("test-postgres"),
        ),
        bootstrap_secret=production.SecretRef("test-bootstrap"),
        internal_url=f"http://{ADDRESS}:{port}",
        http_host=ADDRESS,
        http_port=port,
        management_port=management_port,
        proxy_trusted_addresses=("127.0.0.0/8",),
        # Keycloak calls the portals (back-channel logout) and the hub realm (brokering) at
        # their public names, over TLS from the rig's CA.
        truststore_paths=(str(rig_ca.bundle_path),),
    )
    conf = production.render_conf(production.options(kc), production.source_notes(kc))
    (dist / "conf" / "keycloak.conf").write_text(conf)
    themes = tuple(t.theme for t in production_tenants.rendered)
    (dist / "providers" / "karmayogi-themes.jar").write_bytes(theme_jar(themes))

    log = root / "keycloak.log"
    bootstrap_secret = secrets.token_urlsafe(24)
    run_env = env | production.plain_env(kc) | {"JAVA_HOME": str(find_java(env))}
    run_env |= {
        "KC_DB_PASSWORD": postgres.password,
        production.BOOTSTRAP_CLIENT_SECRET_ENV: bootstrap_secret,
    }
    with log.open("ab") as handle:
        built = subprocess.run(
            production.build_command(str(dist)),
            env=run_env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    if built.returncode != 0:
        pytest.fail(f"kc.sh build failed ({built.returncode}):\n{tail(log, 30)}")
    with log.open("ab") as handle:
        process = subprocess.Popen(
            production_names.wrap(production.start_command(str(dist))),
            env=run_env,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proxy = TlsProxy(
        root / "proxy",
        [Route(LOGIN_DOMAIN, ADDRESS, *rig_ca.issue([LOGIN_DOMAIN]), f"http://{ADDRESS}:{port}")],
    )
    try:
        management_url = f"http://{ADDRESS}:{management_port}"
        wait_for_http(
            f"{management_url}/health/ready",
            name="production Keycloak",
            log=log,
            timeout=START_TIMEOUT,
            process=process,
        )
        url = f"http://{ADDRESS}:{port}"
        accounts = bootstrap_operator_accounts(url, kc.bootstrap_client_id, bootstrap_secret)
        proxy.start()
        yield ProductionServer(
            url=url,
            hostname=HOSTNAME,
            management_url=management_url,
            accounts=accounts,
            bootstrap_client_id=kc.bootstrap_client_id,
            bootstrap_client_secret=bootstrap_secret,
            db_password=postgres.password,
            conf=conf,
            themes=themes,
            dist=dist,
            log=log,
        )
    finally:
        proxy.stop()
        stop_process_group(process.pid)
        process.wait(timeout=10)


@dataclass(frozen=True)
class Reconciled:
    api: AdminAPI
    federation: Federation


@pytest.fixture(scope="session")
def reconciled(
    production_keycloak: ProductionServer, production_tenants: ProductionTenants
) -> Reconciled:
    """The rendered tenants' realms applied to the production Keycloak, once a session.

    Realm URLs the reconciler writes (the hub's issuer, broker redirects) are public ones; only
    the admin API is reached at the internal address.
    """
    server = production_keycloak
    account = server.reconciler
    api = AdminAPI(Credentials(server.url, account.client_id, account.client_secret))
    federation = federation_of(production_tenants.rendered, server.hostname)
    Reconciler(api, federation).apply()
    return Reconciled(api, federation)
