"""The tenants the production round trip deploys: the example hub and Bihar, rendered once
for a production target at real names (``learn.<code>.test``) with one Keycloak at
``auth.federation.test``, their secrets made for the session."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from infra.render.inputs import Secret
from infra.render.tenant import RenderedTenant, render_tenants
from infra.spec import TenantSpec, load_specs
from infra.targets.production import HostnamePlacement
from tests.infra.examples import example_folder


def database_name(code: str) -> str:
    return f"portal_{code.replace('-', '_')}"


LOGIN_DOMAIN = "auth.federation.test"
BIHAR_DOMAIN = "learn.bihar.test"
HUB_DOMAIN = "learn.karmayogi.test"


@dataclass
class SessionSecrets:
    """A secret store with values, as an operator's vault would hold them."""

    values: dict[tuple[str, str], str] = field(default_factory=dict)
    database_urls: dict[str, str] = field(default_factory=dict)

    def secret(self, code: str, name: str) -> Secret:
        if name == "database_url":
            return Secret(name, f"session:{code}/{name}", self.database_urls.get(code))
        value = self.values.setdefault((code, name), secrets.token_urlsafe(48))
        return Secret(name, f"session:{code}/{name}", value)


@dataclass(frozen=True)
class ProductionTenants:
    folder: Path
    specs: list[TenantSpec]
    rendered: tuple[RenderedTenant, ...]
    store: SessionSecrets
    data_root: Path

    def tenant(self, name: str) -> RenderedTenant:
        """The rendered tenant made from the example ``name`` (``bihar``, ``karmayogi``)."""
        return next(r for r in self.rendered if r.code.startswith(f"{name}-"))


def production_tenants(root: Path, database_url: Callable[[str], str]) -> ProductionTenants:
    """Render the tenants; ``database_url`` gives the URL of a portal's database by name."""
    folder = root / "tenants"
    suffix = uuid.uuid4().hex[:6]
    codes = example_folder(folder, suffix, names=("karmayogi-bharat", "bihar"))
    for code in codes.values():
        path = folder / f"{code}.yaml"
        text = path.read_text(encoding="utf-8")
        short = code.split("-")[0]
        text = text.replace("target: local", "target: vm\n    name: national")
        text = text.replace("  identity:\n", f"  identity:\n    loginDomain: {LOGIN_DOMAIN}\n")
        domain = next(line for line in text.splitlines() if line.strip().startswith("domain:"))
        text = text.replace(domain, f"  domain: learn.{short}.test")
        path.write_text(text, encoding="utf-8")
    specs = load_specs([folder])
    store = SessionSecrets()
    for spec in specs:
        store.database_urls[spec.code] = database_url(database_name(spec.code))
    data_root = root / "srv"
    logos = {s.code: s.logo_path.read_bytes() for s in specs}
    rendered = render_tenants(specs, HostnamePlacement(specs, str(data_root)), store, logos)
    return ProductionTenants(folder, specs, rendered, store, data_root)
