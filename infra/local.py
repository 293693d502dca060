"""The local target (the embedded default): one Keycloak and, later, one portal per tenant.

Entry points call these with the environment they read; everything below takes typed values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from identity.admin import AdminAPI, Credentials
from identity.desired import TenantRealm
from identity.reconciler import Reconciler
from identity.themes import remove_theme, theme_drift, theme_name, write_theme
from infra.federation import start_syncer, stop_syncer, sync_round
from infra.home import KitHome
from infra.keycloak_runtime import LocalKeycloak
from infra.portals import known_portals, portal_status, seed_portal, start_portal, stop_portal
from infra.render import local_federation, login_theme
from infra.spec import TenantSpec

Progress = Callable[[str], None]


def local_keycloak(env: dict[str, str]) -> LocalKeycloak:
    heap = env.get("KARMAYOGI_KEYCLOAK_HEAP", "")
    home = KitHome.from_env(env)
    return LocalKeycloak(home, env, heap=heap) if heap else LocalKeycloak(home, env)


def admin_api(kc: LocalKeycloak) -> AdminAPI:
    account = kc.service_account()
    return AdminAPI(Credentials(account.server_url, account.client_id, account.client_secret))


def reconciler_for(specs: Sequence[TenantSpec], kc: LocalKeycloak) -> Reconciler:
    """A reconciler for ``specs`` on the local Keycloak, themes in the kit's theme folder."""
    home = kc.paths.home
    federation = local_federation(specs, home, kc.url)
    themes = {spec.code: login_theme(spec) for spec in specs}

    def drift(tenant: TenantRealm) -> list[str]:
        return theme_drift(themes[tenant.code], home.themes)

    def write(tenant: TenantRealm) -> None:
        write_theme(themes[tenant.code], home.themes)

    return Reconciler(admin_api(kc), federation, theme_drift=drift, theme_write=write)


def local_reconciler(specs: Sequence[TenantSpec], env: dict[str, str]) -> Reconciler:
    return reconciler_for(specs, local_keycloak(env))


def local_destroy(code: str, specs: Sequence[TenantSpec], env: dict[str, str]) -> list[str]:
    """Remove one tenant from Keycloak, whether or not its spec is still in the folder."""
    kc = local_keycloak(env)
    hub = next((s.code for s in specs if s.is_hub), None)
    reconciler = reconciler_for(specs, kc)
    themes = kc.paths.home.themes
    removed = reconciler.destroy(code, hub)
    if remove_theme(theme_name(code), themes):
        removed.append(f"theme {theme_name(code)}")
    return removed


def tenant_rows(specs: Sequence[TenantSpec], home: KitHome) -> list[dict[str, Any]]:
    """Each tenant as `karmayogi status --json` reports it (docs/identity.md has the shape)."""
    rows = []
    for spec in specs:
        portal = portal_status(spec, list(specs), home)
        rows.append(
            {
                "code": spec.code,
                "type": spec.metadata.type,
                "realm": spec.code,
                "portal_url": portal.url,
                "pid": portal.pid,
                "healthy": portal.healthy,
            }
        )
    return rows


def local_up(
    specs: Sequence[TenantSpec],
    env: dict[str, str],
    progress: Progress,
    *,
    seed: bool = True,
    tenants: Path | None = None,
) -> dict[str, Any]:
    """Start Keycloak, converge every realm with the specs, then start every portal; with
    ``seed``, a portal that has no course yet gets its demo courses. Then one federation
    round, and (given the ``tenants`` folder) the periodic syncer."""
    kc = local_keycloak(env)
    home = kc.paths.home
    progress(f"Keycloak {kc.paths.version}: installing and starting")
    status = kc.start()
    progress(f"Keycloak ready at {status.url}")
    reconciler = reconciler_for(specs, kc)
    ordered = sorted(specs, key=lambda s: (not s.is_hub, s.code))
    for spec in ordered:
        changes = reconciler.apply([spec.code])
        progress(f"realm {spec.code}: {len(changes)} change(s) applied")
    for spec in ordered:
        progress(f"portal {spec.code}: preparing and starting")
        portal = start_portal(spec, list(specs), home, kc.url, env)
        progress(f"portal {spec.code}: ready at {portal.url}")
        if seed:
            progress(f"portal {spec.code}: demo courses (only into a portal without courses)")
            seed_portal(spec.code, home, env, if_empty=True)
    progress("federation: the hub pulls what tenants publish, then every tenant pulls the hub")
    for code, report in sync_round(specs, home, env).items():
        if report.startswith("error:"):
            progress(f"federation {code}: {report}")
    if tenants is not None:
        progress(f"federation: syncing every minute (pid {start_syncer(tenants, home, env)})")
    return {"keycloak": kc.status().as_dict(), "tenants": tenant_rows(specs, home)}


def local_down(env: dict[str, str]) -> list[str]:
    """Stop every portal this home runs, then Keycloak; what was stopped, by name."""
    kc = local_keycloak(env)
    home = kc.paths.home
    stopped = ["federation syncer"] if stop_syncer(home) else []
    stopped += [f"portal {code}" for code in known_portals(home) if stop_portal(code, home)]
    if kc.stop():
        stopped.append("Keycloak")
    return stopped


def local_status(specs: Sequence[TenantSpec], env: dict[str, str]) -> dict[str, Any]:
    kc = local_keycloak(env)
    return {"keycloak": kc.status().as_dict(), "tenants": tenant_rows(specs, kc.paths.home)}
