"""A tenant's life on the local target: scaffolded from a few answers, offboarded with an archive.

``karmayogi tenant new`` writes a valid spec (and a logo when none is given) into the tenants
folder; the next ``karmayogi up`` brings the tenant online without restarting the others.
``karmayogi tenant remove`` first writes a dated archive — the portal's database and media,
the realm's configuration, its users' profiles (Keycloak never lets credentials out), the
tenant's clients in the hub realm, and its spec — then stops the portal, deletes the realm
and the hub clients, and takes the spec out of the folder. Nothing of another tenant is
touched; their rendered settings stop naming the removed tenant.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import os
import re
import shutil
import sqlite3
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from identity.admin import AdminAPI, q
from infra.errors import KitError
from infra.home import KitHome, read_json, write_private_json
from infra.spec import TENANT_CODE_PATTERN, SpecError, TenantSpec, load_specs
from infra.spec.model import DEPLOYMENT_FILES
from infra.targets.local.demo import forget_demo_accounts

USERS_PAGE = 100


class LifecycleError(KitError):
    pass


# --- tenant new ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NewTenant:
    code: str
    name: str
    type: str
    languages: tuple[str, ...]
    domain: str
    primary: str
    accent: str
    logo: Path | None = None
    departments: tuple[tuple[str, str], ...] = (("administration", "General Administration"),)
    # A state publishes its courses to the hub; a country keeps its own at home by default.
    publish: bool | None = None


def initials_logo(name: str, primary: str, accent: str) -> str:
    """A plain SVG logo with the tenant's initials, for a tenant that has none yet."""
    words = [w for w in name.replace("-", " ").split() if w[:1].isalnum()]
    letters = "".join(w[0] for w in words[:2]).upper() or name[:2].upper()
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 120 120" role="img" '
        f'aria-label="{html.escape(name)}">'
        f'<circle cx="60" cy="60" r="56" fill="{primary}"/>'
        f'<circle cx="60" cy="60" r="46" fill="none" stroke="{accent}" stroke-width="6"/>'
        '<text x="60" y="75" text-anchor="middle" font-family="sans-serif" font-size="40" '
        f'font-weight="700" fill="#ffffff">{html.escape(letters)}</text></svg>\n'
    )


def scaffold_tenant(new: NewTenant, folder: Path) -> Path:
    """Write ``<code>.yaml`` (and its logo) into ``folder`` and check the whole folder.

    When the folder does not validate with the new spec in it, both files are removed again
    and the problems raised: nothing is left half-written.
    """
    if not re.fullmatch(TENANT_CODE_PATTERN, new.code):
        # Checked before the code names any file: it becomes a file name below.
        raise LifecycleError(
            f"tenant new: code {new.code!r} must be 3-32 characters of a-z, 0-9 and '-', "
            "starting with a letter and ending with a letter or digit"
        )
    specs = [p for p in folder.glob("*.yaml") if p.name not in DEPLOYMENT_FILES]
    existing = load_specs([folder]) if specs else []
    target = folder / f"{new.code}.yaml"
    if target.exists():
        raise LifecycleError(f"{target} already exists; choose another code")
    hub = next((s for s in existing if s.is_hub), None)
    if new.type != "hub" and hub is None:
        raise LifecycleError(f"{folder} has no hub spec for the new tenant to federate with")
    branding = folder / "branding"
    suffix = new.logo.suffix.lower() if new.logo else ".svg"
    logo_target = branding / f"{new.code}{suffix}"
    if logo_target.exists():
        raise LifecycleError(f"{logo_target} already exists; choose another code")
    publish = new.type == "state" if new.publish is None else new.publish
    federation: dict[str, Any] = {"publish": publish}
    if hub is not None and new.type != "hub":
        federation = {"hub": hub.code, **federation}
    document = {
        "apiVersion": "karmayogi.dev/v1",
        "kind": "Tenant",
        "metadata": {"code": new.code, "name": new.name, "type": new.type},
        "spec": {
            "domain": new.domain,
            "languages": list(new.languages),
            "branding": {
                "displayName": new.name if new.type == "hub" else f"{new.name} Karmayogi",
                "logo": f"branding/{logo_target.name}",
                "colors": {"primary": new.primary, "accent": new.accent},
            },
            "identity": {
                "brokerToHub": hub is not None and new.type == "state",
                "adminOtp": "required",
                "departments": [{"code": c, "name": n} for c, n in new.departments],
            },
            "federation": federation,
            "deployment": {"target": "local", "size": "small"},
        },
    }
    branding.mkdir(parents=True, exist_ok=True)
    written = [target, logo_target]
    try:
        if new.logo is not None:
            shutil.copyfile(new.logo, logo_target)
        else:
            logo_target.write_text(
                initials_logo(new.name, new.primary, new.accent), encoding="utf-8"
            )
        out = io.StringIO()
        yaml = YAML()
        yaml.default_flow_style = False
        yaml.dump(document, out)
        header = f"# {new.name}: scaffolded by `karmayogi tenant new`; edit freely.\n"
        target.write_text(header + out.getvalue(), encoding="utf-8")
        load_specs([folder])
    except (SpecError, OSError):
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return target


# --- tenant remove -------------------------------------------------------------------------


@dataclass
class Archive:
    path: Path
    files: dict[str, str] = field(default_factory=dict)  # name -> sha256
    users: int = 0


def archives_dir(home: KitHome) -> Path:
    return home.root / "archives"


def _users(api: AdminAPI, realm: str) -> Iterator[dict[str, Any]]:
    """Every user's profile with their groups and realm roles, page by page; a user
    representation never carries credentials."""
    first = 0
    while True:
        page = api.get(
            f"/{q(realm)}/users",
            f"users of {realm}",
            first=str(first),
            max=str(USERS_PAGE),
            briefRepresentation="false",
        )
        for user in page or []:
            user.pop("credentials", None)
            user_id = user["id"]
            groups = api.get(f"/{q(realm)}/users/{user_id}/groups", f"groups of {user_id}")
            roles = api.get(
                f"/{q(realm)}/users/{user_id}/role-mappings/realm", f"roles of {user_id}"
            )
            user["groups"] = [g.get("path") for g in groups or []]
            user["realmRoles"] = [r.get("name") for r in roles or []]
            yield user
        if not page or len(page) < USERS_PAGE:
            return
        first += USERS_PAGE


def _hub_clients(api: AdminAPI, hub: str | None, code: str) -> list[dict[str, Any]]:
    if hub is None or hub == code:
        return []
    found = []
    for client_id in (f"federation-{code}", f"broker-{code}"):
        for client in api.get(f"/{q(hub)}/clients", f"clients of {hub}", clientId=client_id) or []:
            client.pop("secret", None)
            found.append(client)
    return found


def write_archive(
    spec: TenantSpec,
    specs: Sequence[TenantSpec],
    api: AdminAPI,
    portal_dir: Path,
    home: KitHome,
) -> Archive:
    """Write ``archives/<code>-<UTC time>.tar.gz`` (0600: it holds personal data) and return
    it with each member's SHA-256. Written under a temporary name, renamed when complete."""
    code = spec.code
    hub = next((s.code for s in specs if s.is_hub), None)
    folder = archives_dir(home)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    final = folder / f"{code}-{stamp}.tar.gz"
    archive = Archive(final)
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{code}-", suffix=".tar.gz")
    os.close(fd)
    os.chmod(tmp_name, 0o600)
    try:
        with tempfile.TemporaryDirectory() as scratch, tarfile.open(tmp_name, "w:gz") as tar:

            def add_bytes(name: str, data: bytes) -> None:
                info = tarfile.TarInfo(f"{code}/{name}")
                info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
                tar.addfile(info, io.BytesIO(data))
                archive.files[name] = hashlib.sha256(data).hexdigest()

            def add_file(name: str, path: Path) -> None:
                add_bytes(name, path.read_bytes())

            add_file(f"spec/{spec.source.name}", spec.source)
            add_file(f"spec/branding/{spec.logo_path.name}", spec.logo_path)
            database = portal_dir / "portal.sqlite3"
            if database.is_file():
                # The backup API gives a consistent copy even while the portal writes.
                copy = Path(scratch) / "portal.sqlite3"
                with sqlite3.connect(database) as src, sqlite3.connect(copy) as dst:
                    src.backup(dst)
                add_file("portal/portal.sqlite3", copy)
            media = portal_dir / "media"
            if media.is_dir():
                for path in sorted(p for p in media.rglob("*") if p.is_file()):
                    add_file(f"portal/media/{path.relative_to(media)}", path)
            realm = api.export_realm(code)
            add_bytes("keycloak/realm.json", json.dumps(realm, indent=2).encode())
            lines = []
            for user in _users(api, code):
                lines.append(json.dumps(user, sort_keys=True))
            archive.users = len(lines)
            add_bytes("keycloak/users.jsonl", "".join(f"{line}\n" for line in lines).encode())
            clients = _hub_clients(api, hub, code)
            add_bytes("keycloak/hub-clients.json", json.dumps(clients, indent=2).encode())
            manifest = {
                "tenant": code,
                "created": stamp,
                "users": archive.users,
                "files": archive.files,
                "note": "Users' credentials never leave Keycloak; client secrets are left out.",
            }
            add_bytes("manifest.json", json.dumps(manifest, indent=2).encode())
        os.replace(tmp_name, final)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return archive


def _remove_tree(path: Path, attempts: int = 20) -> None:
    """Remove ``path``. A process still finishing its writes there (the tenant's sync round
    begun before its removal, its portal's last writes) may add entries while it goes, which
    ``rmtree`` would leave behind: try again, then once more saying why it fails."""
    for _ in range(attempts):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
        time.sleep(0.5)
    try:
        shutil.rmtree(path)
    except OSError as exc:
        raise KitError(f"{path}: cannot be removed ({exc.strerror})") from None


def forget_local_tenant(code: str, home: KitHome, portal_dir: Path) -> None:
    """Remove what the kit kept for the tenant on this machine (after its archive)."""
    _remove_tree(portal_dir)
    (home.secrets / f"tenant-{code}.json").unlink(missing_ok=True)
    shutil.rmtree(home.rendered / code, ignore_errors=True)
    endpoints_path = home.rendered / "local-endpoints.json"
    endpoints = read_json(endpoints_path) or {}
    if endpoints.pop(code, None) is not None:
        write_private_json(endpoints_path, endpoints)
    forget_demo_accounts(code, home)


def take_spec_out(spec: TenantSpec, specs: Sequence[TenantSpec]) -> None:
    """Delete the spec file, and its logo unless another spec uses the same file."""
    logo = spec.logo_path.resolve()
    shared = any(s.logo_path.resolve() == logo for s in specs if s.code != spec.code)
    spec.source.unlink(missing_ok=True)
    if not shared:
        logo.unlink(missing_ok=True)
