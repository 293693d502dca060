"""The realm step of the production targets: ``playbooks/site.yml`` runs it on the Keycloak
host from the release's virtualenv, the keycloak chart's realm Job in the portal image, and the
aws target's deploys from the operator's machine (:func:`apply_to`, with Secrets Manager as
the store: ``infra/targets/aws/realms.py``). It makes the kit's accounts in place of
Keycloak's temporary bootstrap client (once) and applies the tenants' realms with the
reconciler.

Its input is one 0600 JSON file Ansible writes from the inventory and the vault::

    {"specs": "/etc/karmayogi/specs", "codes": ["karmayogi-bharat", "bihar"],
     "data_root": "/var/lib/karmayogi", "keycloak_url": "http://127.0.0.1:8080",
     "bootstrap_client_id": "karmayogi-bootstrap", "bootstrap_client_secret": "…",
     "accounts_file": "/etc/karmayogi/keycloak-accounts.json",
     "secrets": {"bihar": {"portal_client_secret": "…", …}, …}}

It prints one JSON line, ``{"changed": bool, "changes": [..]}``, for Ansible's
``changed_when``; a problem is one line on standard error and exit status 1.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.errors import KitError
from infra.keycloak.accounts import OperatorAccounts, ServiceAccount
from infra.render.inputs import Secret, SecretStore

if TYPE_CHECKING:
    from infra.spec import TenantSpec

# Names the Secret the keycloak chart's realm Job keeps the accounts in (accounts_secret.py).
ACCOUNTS_SECRET_ENV = "KARMAYOGI_ACCOUNTS_SECRET"


@dataclass(frozen=True)
class VaultValues:
    """The secrets Ansible passed from the vault, by tenant and name."""

    values: Mapping[str, Mapping[str, str]]

    def secret(self, code: str, name: str) -> Secret:
        return Secret(name, f"ansible-vault:{code}/{name}", self.values.get(code, {}).get(name))


def _read_input(path: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KitError(f"{path}: cannot read the realm step's input ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise KitError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    required: tuple[str, ...] = (
        "specs",
        "codes",
        "data_root",
        "keycloak_url",
        "bootstrap_client_id",
        "bootstrap_client_secret",
        "secrets",
    )
    # The accounts are kept in a file (a VM), or in the Secret the chart's Job names.
    if not environ.get(ACCOUNTS_SECRET_ENV):
        required += ("accounts_file",)
    missing = [name for name in required if name not in data]
    if missing:
        raise KitError(f"{path}: missing {', '.join(missing)}")
    return dict(data)


def apply_realms(config: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> list[str]:
    """Make the kit's accounts if needed and apply the realms of ``config['codes']``;
    returns each change the reconciler made, described. The accounts are kept in
    ``config['accounts_file']``, else in the Kubernetes Secret ``KARMAYOGI_ACCOUNTS_SECRET``
    names (the keycloak chart's realm Job)."""
    from infra.keycloak.accounts_secret import AccountsSecret
    from infra.spec import load_specs

    env = os.environ if environ is None else environ
    url = str(config["keycloak_url"]).rstrip("/")
    place: AccountsFile | AccountsSecret
    if "accounts_file" in config:
        place = AccountsFile(Path(config["accounts_file"]))
    else:
        place = AccountsSecret.in_cluster(env[ACCOUNTS_SECRET_ENV], env)
    text = place.read()
    existing = accounts_from_json(text, url) if text else None
    return apply_to(
        load_specs([Path(config["specs"])]),
        config["codes"],
        VaultValues(config["secrets"]),
        data_root=config["data_root"],
        keycloak_url=url,
        bootstrap=(config["bootstrap_client_id"], config["bootstrap_client_secret"]),
        existing=existing,
        store=lambda accounts: place.write(accounts_json(accounts)),
    )


@dataclass(frozen=True)
class AccountsFile:
    """The accounts kept in a 0600 file on the Keycloak host (a VM)."""

    path: Path

    def read(self) -> str | None:
        return self.path.read_text(encoding="utf-8") if self.path.exists() else None

    def write(self, text: str) -> None:
        from infra.home import write_private_text

        write_private_text(self.path, text)


def apply_to(
    specs: Sequence[TenantSpec],
    codes: Sequence[str],
    secrets: SecretStore,
    *,
    data_root: str,
    keycloak_url: str,
    bootstrap: tuple[str, str | None],
    existing: OperatorAccounts | None,
    store: Callable[[OperatorAccounts], None],
) -> list[str]:
    """The realm step of any target: the kit's accounts (``existing``, else made from the
    ``bootstrap`` client, id and secret, and given to ``store``), then the realms of ``codes``
    applied with their secrets from ``secrets`` (none: the accounts only); each change the
    reconciler made, described."""
    from identity.admin import AdminAPI, Credentials
    from identity.reconciler import Reconciler
    from infra.keycloak.accounts import bootstrap_operator_accounts
    from infra.render.tenant import federation_of, render_tenants
    from infra.targets.production import HostnamePlacement

    url = keycloak_url.rstrip("/")
    bootstrap_id, bootstrap_secret = bootstrap
    if existing is None and bootstrap_secret is None:
        raise KitError(
            f"no operator accounts of Keycloak at {url} are kept, and no bootstrap client "
            "secret was given to make them"
        )
    accounts = bootstrap_operator_accounts(
        url, bootstrap_id, bootstrap_secret or "", existing=existing, store=store
    )
    if not codes:
        return []
    logos = {spec.code: spec.logo_path.read_bytes() for spec in specs}
    placement = HostnamePlacement(specs, data_root)
    everyone = render_tenants(specs, placement, secrets, logos)
    rendered = tuple(r for r in everyone if r.code in codes)
    api = AdminAPI(
        Credentials(url, accounts.reconciler.client_id, accounts.reconciler.client_secret)
    )
    public = placement.keycloak_url(rendered[0].code)
    changes = Reconciler(api, federation_of(rendered, public)).apply(codes)
    return [change.describe() for change in changes]


def accounts_json(accounts: OperatorAccounts) -> str:
    """The kit's operator accounts as the targets keep them (a file, a secret)."""
    return json.dumps(
        {
            "admin_username": accounts.admin_username,
            "admin_password": accounts.admin_password,
            "reconciler_client_id": accounts.reconciler.client_id,
            "reconciler_client_secret": accounts.reconciler.client_secret,
        }
    )


def accounts_from_json(text: str, url: str) -> OperatorAccounts:
    """What :func:`accounts_json` wrote, the reconciler signing in at ``url``."""
    kept = json.loads(text)
    return OperatorAccounts(
        kept["admin_username"],
        kept["admin_password"],
        ServiceAccount(url, kept["reconciler_client_id"], kept["reconciler_client_secret"]),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m infra.keycloak.realm_step INPUT.json", file=sys.stderr)
        return 2
    from identity.errors import IdentityError

    try:
        changes = apply_realms(_read_input(Path(args[0]), os.environ))
    except (KitError, IdentityError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"changed": bool(changes), "changes": changes}))
    return 0


if __name__ == "__main__":  # pragma: no cover - run by the play
    sys.exit(main())
