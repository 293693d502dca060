"""The local target (the embedded default): one Keycloak and, later, one portal per tenant.

Entry points call these with the environment they read; everything below takes typed values.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from identity.admin import AdminAPI, Credentials
from identity.desired import TenantRealm
from identity.reconciler import Change, Reconciler
from identity.themes import remove_theme, theme_drift, theme_name, write_theme
from identity.vault import FileVault
from infra.errors import KitError
from infra.home import KitHome
from infra.render.tenant import RenderedTenant, federation_of, secret_references
from infra.spec import TenantSpec, load_specs
from infra.spec.model import NAME_PATTERN
from infra.targets.local.demo import accounts_path, ensure_demo_accounts
from infra.targets.local.federation import (
    FederationError,
    federation_status,
    start_syncer,
    stop_syncer,
    sync_round,
    syncer_pid,
)
from infra.targets.local.keycloak import LocalKeycloak
from infra.targets.local.lifecycle import (
    Archive,
    LifecycleError,
    forget_local_tenant,
    take_spec_out,
    write_archive,
)
from infra.targets.local.portals import (
    PortalError,
    known_portals,
    log_path,
    portal_status,
    prepare_shared,
    running_pid,
    seed_portal,
    seeded,
    start_portal,
    stop_portal,
)
from infra.targets.local.render import (
    LocalSecretStore,
    browser_keycloak_url,
    first_local_address,
    local_endpoints,
    portal_data_dir,
    portal_env_path,
    public_keycloak_url,
    remember_names,
    render_local,
    write_portal_env,
)
from infra.targets.local.truststore import LocalTruststore, provider_cas

Progress = Callable[[str], None]


def local_keycloak(env: dict[str, str]) -> LocalKeycloak:
    heap = env.get("KARMAYOGI_KEYCLOAK_HEAP", "")
    home = KitHome.from_env(env)
    return LocalKeycloak(home, env, heap=heap) if heap else LocalKeycloak(home, env)


def admin_api(kc: LocalKeycloak) -> AdminAPI:
    account = kc.service_account()
    return AdminAPI(Credentials(account.server_url, account.client_id, account.client_secret))


def reconciler_for(
    specs: Sequence[TenantSpec], kc: LocalKeycloak, *, check_secrets: bool = True
) -> Reconciler:
    """A reconciler for ``specs`` on the local Keycloak, themes in the kit's theme folder and
    the providers' secrets in its vault folder."""
    home = kc.paths.home
    rendered = render_local(specs, home, kc.url)
    federation = federation_of(rendered, browser_keycloak_url(home, kc.url))
    themes = {r.code: r.theme for r in rendered}

    def drift(tenant: TenantRealm) -> list[str]:
        return theme_drift(themes[tenant.code], home.themes)

    def write(tenant: TenantRealm) -> None:
        write_theme(themes[tenant.code], home.themes)

    if check_secrets:
        check_vault_secrets(rendered)
        provider_cas(specs)  # a provider's unreadable CA stops the command here
    return Reconciler(
        admin_api(kc),
        federation,
        theme_drift=drift,
        theme_write=write,
        vault=FileVault(kc.paths.vault),
    )


def sync_directory(
    code: str, alias: str, specs: Sequence[TenantSpec], env: dict[str, str], *, full: bool
) -> dict[str, int]:
    """Sync a tenant's directory now (on top of its periodic syncs)."""
    return reconciler_for(specs, local_keycloak(env)).sync_directory(code, alias, full=full)


def store_provider_secret(code: str, name: str, value: str, env: dict[str, str]) -> Path:
    """Keep a provider's secret (client secret, bind password) in the tenant's local store;
    the next ``identity apply`` puts it into Keycloak's vault."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise KitError(f"secret name {name!r}: expected a-z, 0-9 and '-', as the spec names it")
    if not value:
        raise KitError(f"secret {name!r}: the value on standard input is empty")
    store = LocalSecretStore(KitHome.from_env(env))
    store.put(code, {name: value})
    return store.path(code)


def check_vault_secrets(rendered: Sequence[RenderedTenant]) -> None:
    """Refuse, before anything is applied, a provider whose named secret the store lacks."""
    for tenant in rendered:
        missing = {s.name for s in tenant.realm.vault if s.value is None}
        for file, where, ref in secret_references(tenant.spec):
            if ref.secret in missing:
                raise KitError(
                    f"{file}: {where}: secret {ref.secret!r} is not in the local "
                    f"secret store; add it with `karmayogi identity secret {tenant.code} "
                    f"{ref.secret}` (the value is read from standard input)"
                )


def sync_truststore(
    specs: Sequence[TenantSpec], kc: LocalKeycloak, codes: Sequence[str] | None = None
) -> bool:
    """Give Keycloak's truststore the CAs of the providers of ``specs`` (those of ``codes``
    only, when given); restart a running Keycloak when that changed what it trusts."""
    bundles = provider_cas(specs)
    if codes is not None:
        bundles = {code: bundle for code, bundle in bundles.items() if code in codes}
    changed = LocalTruststore(kc.paths.truststore).update(bundles)
    if changed and kc.running_pid() is not None:
        kc.restart()
        return True
    return False


@dataclass(frozen=True)
class Applied:
    """What `identity apply` did: the changes, its write requests, a restart for new CAs."""

    changes: list[Change]
    writes: int
    restarted: bool


def local_apply(
    specs: Sequence[TenantSpec], env: dict[str, str], codes: Sequence[str] | None = None
) -> Applied:
    """Apply the realms, then the providers' CAs, which Keycloak reads when it starts."""
    kc = local_keycloak(env)
    reconciler = reconciler_for(specs, kc)
    changes = reconciler.apply(codes)
    restarted = sync_truststore(specs, kc, codes)
    return Applied(changes, reconciler.api.writes, restarted)


def local_reconciler(specs: Sequence[TenantSpec], env: dict[str, str]) -> Reconciler:
    return reconciler_for(specs, local_keycloak(env))


def local_destroy(code: str, specs: Sequence[TenantSpec], env: dict[str, str]) -> list[str]:
    """Remove one tenant from Keycloak, whether or not its spec is still in the folder."""
    kc = local_keycloak(env)
    hub = next((s.code for s in specs if s.is_hub), None)
    reconciler = reconciler_for(specs, kc, check_secrets=False)
    themes = kc.paths.home.themes
    removed = reconciler.destroy(code, hub)
    LocalTruststore(kc.paths.truststore).remove([code])
    if remove_theme(theme_name(code), themes):
        removed.append(f"theme {theme_name(code)}")
    return removed


def tenant_rows(specs: Sequence[TenantSpec], home: KitHome) -> list[dict[str, Any]]:
    """Each tenant as `karmayogi status --json` reports it (docs/operating.md has the shape)."""
    rows = []
    public = public_keycloak_url(home)
    for spec in specs:
        portal = portal_status(spec, list(specs), home)
        rows.append(
            {
                "code": spec.code,
                "type": spec.metadata.type,
                "realm": spec.code,
                "portal_url": portal.url,
                # Where users reach it: its public name with public names, else the same.
                "public_url": f"https://{spec.spec.domain}" if public else portal.url,
                "pid": portal.pid,
                "healthy": portal.healthy,
                "log": str(log_path(spec.code, home)),
            }
        )
    return rows


@contextmanager
def up_lock(home: KitHome) -> Iterator[None]:
    """One ``up`` at a time per home: a second one is refused with the first one's PID."""
    home.create()
    path = home.root / "up.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "r+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise KitError(
                f"`karmayogi up` (or `tenant remove`, `reset`) is already running (pid "
                f"{holder}) on this home; wait for it to finish, or see `karmayogi status`"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()


@dataclass
class UpResult:
    keycloak: dict[str, Any]
    tenants: list[dict[str, Any]]
    failures: dict[str, str] = field(default_factory=dict)
    demo_accounts: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    demo_accounts_file: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "keycloak": self.keycloak,
            "tenants": self.tenants,
            "failures": self.failures,
            "demo_accounts": self.demo_accounts,
            "demo_accounts_file": self.demo_accounts_file,
        }


def local_up(
    specs: Sequence[TenantSpec],
    env: dict[str, str],
    progress: Progress,
    *,
    seed: bool = True,
    tenants: Path | None = None,
) -> UpResult:
    """Bring the local federation to the specs; idempotent, and quick when it already ran.

    Keycloak boots while the portals are prepared and started (a portal needs Keycloak's URL,
    not Keycloak itself, to start); realms and demo accounts are converged once Keycloak
    answers. A portal that fails to start is reported with its log's tail and the others go
    on. With ``seed``, a portal not yet seeded gets its demo courses. One federation round
    runs when anything was started or seeded (so that `status` is healthy when `up` returns);
    given the ``tenants`` folder, the periodic syncer is started.
    """
    kc = local_keycloak(env)
    home = kc.paths.home
    first = first_local_address(env)  # a bad value stops `up` before anything starts
    with up_lock(home):
        remember_names(specs, home, env)
        progress(f"Keycloak {kc.paths.version}: starting (installing it first if needed)")
        # Before the launch, so that Keycloak starts trusting the providers' CAs.
        if sync_truststore(specs, kc):
            progress("Keycloak: restarted to trust the providers' CAs")
        launched = kc.launch()
        # Addresses, ports and secrets are settled before any thread renders a portal.
        local_endpoints(specs, home, first)
        ordered = sorted(specs, key=lambda s: (not s.is_hub, s.code))
        for spec in ordered:
            LocalSecretStore(home).values(spec.code)
        prepare_shared(ordered, home, kc.url, env, progress)
        failures: dict[str, str] = {}
        # Not a `with` block: on Ctrl-C the caller must not wait for every thread to finish.
        pool = ThreadPoolExecutor(max_workers=len(ordered) + 1)
        try:
            identity = pool.submit(_converge_identity, kc, launched, ordered, progress)
            portals = {
                spec.code: pool.submit(_start_one, spec, ordered, home, kc.url, env, progress)
                for spec in ordered
            }
            demo = identity.result()  # Keycloak's failure ends `up`: nothing can sign in
            started = launched is not None
            for code, future in portals.items():
                try:
                    started = future.result() or started
                except PortalError as exc:
                    failures[code] = str(exc)
                    progress(f"portal {code}: FAILED to start (the others go on)")
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        running = [s for s in ordered if s.code not in failures]
        seeded_now = []
        unseeded = [s.code for s in running if seed and not seeded(s.code, home)]

        def seed_one(code: str) -> str | None:
            progress(f"portal {code}: adding demo courses")
            try:
                seed_portal(code, home, env, if_empty=False)
            except PortalError as exc:
                return str(exc)
            return None

        with ThreadPoolExecutor(max_workers=2) as seeding:
            for code, error in zip(unseeded, seeding.map(seed_one, unseeded), strict=True):
                if error is None:
                    seeded_now.append(code)
                else:
                    failures[code] = error
        # A round now when anything (re)started, so that `status` is healthy when `up`
        # returns (a round that failed while a part was down leaves its error until the next).
        if seeded_now or started or tenants is None:
            progress("federation: the hub pulls what tenants publish, then every tenant the hub")
            for code, report in sync_round(running, home, env).items():
                for line in report.splitlines():
                    if line.startswith("error:"):
                        progress(f"federation {code}: {line}")
        if tenants is not None:
            pid = start_syncer(tenants, home, env)
            progress(f"federation: syncing every minute (pid {pid})")
        return UpResult(
            keycloak=kc.status().as_dict() | {"public_url": public_keycloak_url(home)},
            tenants=tenant_rows(specs, home),
            failures=failures,
            demo_accounts=demo,
            demo_accounts_file=str(accounts_path(home)),
        )


def _converge_identity(
    kc: LocalKeycloak,
    launched: subprocess.Popen[bytes] | None,
    ordered: Sequence[TenantSpec],
    progress: Progress,
) -> dict[str, list[dict[str, str]]]:
    status = kc.finish_start(launched)
    progress(f"Keycloak ready at {status.url}")
    reconciler = reconciler_for(ordered, kc)
    for spec in ordered:
        changes = reconciler.apply([spec.code])
        progress(f"realm {spec.code}: {len(changes)} change(s) applied")
    demo = {}
    for spec in ordered:
        accounts = ensure_demo_accounts(spec, reconciler.api, kc.paths.home)
        demo[spec.code] = [a.as_dict() for a in accounts]
    progress(f"demo accounts: {sum(len(a) for a in demo.values())} in {len(demo)} realm(s)")
    return demo


def _start_one(
    spec: TenantSpec,
    specs: Sequence[TenantSpec],
    home: KitHome,
    keycloak_url: str,
    env: dict[str, str],
    progress: Progress,
) -> bool:
    """Start the portal unless it runs; whether it was started."""
    was_running = running_pid(spec.code, home)
    if was_running is None:
        progress(f"portal {spec.code}: preparing and starting")
    portal = start_portal(spec, list(specs), home, keycloak_url, env)
    state = "already running" if was_running else "ready"
    progress(f"portal {spec.code}: {state} at {portal.url}")
    return was_running is None


def local_remove_tenant(
    code: str, folder: Path, env: dict[str, str], progress: Progress
) -> Archive:
    """Offboard ``code``: archive it, stop its portal, delete its realm and hub clients, take
    its spec out of ``folder``, and re-render the others' settings without it."""
    specs = load_specs([folder])
    spec = next((s for s in specs if s.code == code), None)
    if spec is None:
        raise LifecycleError(f"no tenant spec with code {code!r} in {folder}")
    if spec.is_hub and len(specs) > 1:
        others = ", ".join(s.code for s in specs if s.code != code)
        raise LifecycleError(f"{code} is the hub of {others}; remove those tenants first")
    kc = local_keycloak(env)
    home = kc.paths.home
    with up_lock(home):
        progress(f"Keycloak: starting if needed, to export realm {code}")
        kc.start()
        api = admin_api(kc)
        portal_dir = portal_data_dir(code, home)
        progress(f"{code}: writing the archive (database, media, realm, users, hub clients)")
        archive = write_archive(spec, specs, api, portal_dir, home)
        progress(f"{code}: archived {archive.users} user profile(s) to {archive.path}")
        if stop_portal(code, home):
            progress(f"portal {code}: stopped")
        removed = local_destroy(code, specs, env)
        progress(f"{code}: removed {', '.join(removed) or 'nothing from Keycloak'}")
        forget_local_tenant(code, home, portal_dir)
        take_spec_out(spec, specs)
        progress(f"{code}: spec {spec.source.name} taken out of {folder}")
        remaining = [s for s in specs if s.code != code]
        for other in remaining:
            if portal_env_path(other.code, home).is_file():
                write_portal_env(other, remaining, home, kc.url)
        return archive


def local_down(env: dict[str, str]) -> list[str]:
    """Stop every portal this home runs, then Keycloak; what was stopped, by name."""
    kc = local_keycloak(env)
    home = kc.paths.home
    stopped = ["federation syncer"] if stop_syncer(home) else []
    stopped += [f"portal {code}" for code in known_portals(home) if stop_portal(code, home)]
    if kc.stop():
        stopped.append("Keycloak")
    return stopped


def local_reset(env: dict[str, str]) -> tuple[list[str], list[str]]:
    """Stop everything, then delete the home's state; offboarding archives stay."""
    home = KitHome.from_env(env)
    with up_lock(home):
        stopped = local_down(env)
        removed = []
        for entry in sorted(home.root.iterdir()) if home.root.is_dir() else []:
            if entry.name in ("archives", "up.lock"):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry.name)
    return stopped, removed


def local_status(specs: Sequence[TenantSpec], env: dict[str, str]) -> dict[str, Any]:
    """Every component's state, as `karmayogi status --json` prints it (docs/operating.md):
    Keycloak, the syncer, and per tenant its portal and its federation peers' lag."""
    kc = local_keycloak(env)
    home = kc.paths.home
    keycloak = kc.status().as_dict() | {
        "log": str(kc.paths.log),
        "public_url": public_keycloak_url(kc.paths.home),
    }
    rows = tenant_rows(specs, home)
    with ThreadPoolExecutor(max_workers=max(1, len(rows))) as pool:
        reads = {
            row["code"]: pool.submit(_federation_of, row["code"], home, env)
            for row in rows
            if row["healthy"]
        }
        for row in rows:
            row["federation"] = reads[row["code"]].result() if row["code"] in reads else None
    pid = syncer_pid(home)
    syncer = {"pid": pid, "running": pid is not None, "log": str(log_path("federation", home))}
    healthy = (
        bool(keycloak["healthy"])
        and syncer["running"]
        and all(r["healthy"] and not (r["federation"] or {}).get("errors") for r in rows)
    )
    return {"healthy": healthy, "keycloak": keycloak, "syncer": syncer, "tenants": rows}


def _federation_of(code: str, home: KitHome, env: dict[str, str]) -> dict[str, Any]:
    try:
        state = federation_status(code, home, env)
    except FederationError as exc:
        return {"feed_changes": None, "peers": [], "errors": [str(exc)]}
    peers = [
        {
            "peer": p["peer"],
            "lag": p["lag"],
            "last_success": p["last_success"],
            "last_error": p["last_error"],
            "quarantined": p["quarantined"],
        }
        for p in state["peers"]
    ]
    errors = [f"{p['peer']}: {p['last_error']}" for p in peers if p["last_error"]]
    return {"feed_changes": state["feed"]["changes"], "peers": peers, "errors": errors}
