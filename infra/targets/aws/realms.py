"""Keycloak's realms on the aws target, applied by the kit after each ``pulumi up``.

On the vm and kubernetes targets the realm step runs beside Keycloak, from an input file the
operator's vault or Secret holds. On aws every value it needs is in Secrets Manager already:
the tenants' client secrets (written by their stacks, ``karmayogi/<code>/…``), Keycloak's
temporary bootstrap client secret and, once made, the kit's operator accounts
(``karmayogi/<deployment>/keycloak-bootstrap-client-secret`` and ``…/keycloak-accounts``,
secrets of the platform stack). So ``karmayogi platform deploy`` and ``karmayogi deploy <code>
--target aws`` run the realm step themselves when their stack is up, from the operator's
machine, against Keycloak's public address: the first run replaces the bootstrap client with
the kit's accounts and keeps them in Secrets Manager, and every run applies the realms of the
deployment's tenants whose stacks are up. A tenant whose stack is not (no client secrets yet)
waits for its own deploy; so do the states while their hub, deployed beside them, waits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from infra.errors import KitError
from infra.keycloak.production import DEFAULT_BOOTSTRAP_CLIENT_ID
from infra.keycloak.realm_step import accounts_from_json, accounts_json, apply_to
from infra.render.inputs import CLIENT_SECRETS
from infra.spec import TenantSpec
from infra.targets.aws import names
from infra.targets.aws.secrets import AwsSecretStore
from infra.targets.production import KEYCLOAK_BOOTSTRAP_SECRET

# The platform's secret holding the kit's operator accounts (JSON, realm_step.accounts_json).
KEYCLOAK_ACCOUNTS = "keycloak_accounts"
# Where the rendered settings would put data; only the realms' URLs are used here.
DATA_ROOT = "/var/lib/karmayogi"


def ready_codes(
    members: Sequence[TenantSpec], store: AwsSecretStore
) -> tuple[list[str], dict[str, str]]:
    """The codes whose realms can be applied now, and why each other one waits."""
    waiting: dict[str, str] = {}
    for spec in members:
        missing = [n for n in CLIENT_SECRETS if store.read(names.secret_id(spec.code, n)) is None]
        if missing:
            waiting[spec.code] = (
                f"no {names.secret_id(spec.code, missing[0])} yet "
                f"(karmayogi deploy {spec.code} --target aws)"
            )
    hub = next((s.code for s in members if s.is_hub), None)
    if hub in waiting:
        for spec in members:
            waiting.setdefault(spec.code, f"its hub {hub} is not deployed yet")
    return [s.code for s in members if s.code not in waiting], waiting


def apply_realms(
    specs: Sequence[TenantSpec],
    deployment: str,
    store: AwsSecretStore,
    progress: Callable[[str], None],
    *,
    keycloak_url: str | None = None,
) -> list[str]:
    """Apply the realms of ``deployment``'s tenants whose stacks are up (the kit's accounts
    made first if none are kept); each change made, described. ``keycloak_url`` is where the
    admin API is reached, by default Keycloak's public address."""
    members = [s for s in specs if s.deployment_name == deployment]
    if not members:
        raise KitError(f"no tenant spec of deployment {deployment!r}")
    public = f"https://{members[0].login_domain}"
    url = (keycloak_url or public).rstrip("/")
    codes, waiting = ready_codes(members, store)
    for code, why in waiting.items():
        progress(f"{code}: its realm waits: {why}")
    accounts_id = names.secret_id(deployment, KEYCLOAK_ACCOUNTS)
    kept = store.read(accounts_id)
    existing = accounts_from_json(kept, url) if kept else None
    bootstrap = None
    if existing is None:
        bootstrap_id = names.secret_id(deployment, KEYCLOAK_BOOTSTRAP_SECRET)
        bootstrap = store.read(bootstrap_id)
        if bootstrap is None:
            raise KitError(
                f"neither {accounts_id} nor {bootstrap_id} has a value: "
                f"run `karmayogi platform deploy {deployment}` first"
            )
        progress(f"making the kit's Keycloak accounts ({accounts_id})")
    if codes:
        progress(f"applying the realms of {', '.join(codes)} at {public}")
    return apply_to(
        members,
        codes,
        store,
        data_root=DATA_ROOT,
        keycloak_url=url,
        bootstrap=(DEFAULT_BOOTSTRAP_CLIENT_ID, bootstrap),
        existing=existing,
        store=lambda accounts: store.write(accounts_id, accounts_json(accounts)),
    )
