"""``LocalTarget``: today's runtime (``runtime.py``) behind the target seam, unchanged.

Locally every spec in the folder runs, whatever its ``deployment.target`` says: the laptop is
where a state tries the kit before it deploys anywhere else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from identity.themes import render_theme
from infra.home import KitHome
from infra.render.inputs import secrets_in
from infra.render.tenant import references
from infra.spec import TenantSpec
from infra.targets.base import Manifest, Progress, SecretReference
from infra.targets.local.membership import LocalMembership
from infra.targets.local.portals import log_path
from infra.targets.local.render import render_local
from infra.targets.local.runtime import (
    UpResult,
    local_keycloak,
    local_remove_tenant,
    local_status,
    local_up,
)


class LocalTarget:
    name = "local"

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.home = KitHome.from_env(env)

    def render(self, specs: Sequence[TenantSpec], codes: Sequence[str], out: Path) -> Manifest:
        """The portal settings (secrets as references to the home's files) and login themes."""
        keycloak_url = local_keycloak(self.env).url
        manifest = Manifest(self.name, list(codes))
        for rendered in render_local(specs, self.home, keycloak_url):
            if rendered.code not in codes:
                continue
            settings = references(rendered.portal)
            manifest.write_file(
                out,
                f"portal/{rendered.code}.settings.json",
                json.dumps(settings, indent=2, ensure_ascii=False) + "\n",
                f"settings of {rendered.code}'s portal (tenant_portal/settings contract)",
            )
            for relative, data in sorted(render_theme(rendered.theme).items()):
                manifest.write_file(
                    out,
                    f"themes/{rendered.theme.name}/{relative}",
                    data,
                    f"{rendered.code}'s login theme, read by Keycloak from its themes folder",
                )
            manifest.secrets += [
                SecretReference(secret.name, secret.reference, rendered.code)
                for secret in secrets_in(dict(rendered.portal))
            ]
        manifest.save(out)
        return manifest

    def deploy(
        self, specs: Sequence[TenantSpec], codes: Sequence[str], progress: Progress
    ) -> UpResult:
        """The whole local federation: one Keycloak serves every realm, so ``codes`` come up
        together with the rest of their folder, whose syncer then runs as after ``up``."""
        folder = specs[0].source.parent.resolve() if specs else None
        return self.up(specs, progress, tenants=folder)

    def up(
        self,
        specs: Sequence[TenantSpec],
        progress: Progress,
        *,
        seed: bool = True,
        tenants: Path | None = None,
    ) -> UpResult:
        return local_up(list(specs), self.env, progress=progress, seed=seed, tenants=tenants)

    def status(self, specs: Sequence[TenantSpec]) -> dict[str, Any]:
        return local_status(specs, self.env)

    def logs(self, name: str) -> Path:
        if name == "keycloak":
            return local_keycloak(self.env).paths.log
        return log_path(name, self.home)

    def remove(
        self, code: str, specs: Sequence[TenantSpec], tenants: Path, progress: Progress
    ) -> Any:
        return local_remove_tenant(code, tenants, self.env, progress=progress)

    def membership(self, specs: Sequence[TenantSpec]) -> LocalMembership:
        return LocalMembership(specs, self.home, self.env)
