"""Demo accounts of the local target: four people per tenant, so a team can click through.

Each tenant's realm gets a learner, a content creator, a department (MDO) administrator and a
tenant administrator. The learner holds a post (the ``post`` attribute, as a state's directory
sets it), so *My learning* shows the gaps of that post and a path. Passwords are generated once
and kept 0600 under the kit's home (``secrets/demo-accounts.json``); they are printed by
``karmayogi up`` and never logged. The demo tenant administrator holds the ``karmayogi_demo``
role, which the local target's sign-in flow exempts from the OTP every other tenant
administrator must enrol (identity/desired.py); no production target renders that exemption.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from identity.admin import AdminAPI, q
from identity.desired import DEMO_ROLE, POST_ATTRIBUTE
from infra.errors import KitError
from infra.home import KitHome, new_password, read_json, write_private_json
from infra.spec import TenantSpec


@dataclass(frozen=True)
class DemoPerson:
    username: str
    first_name: str
    last_name: str
    roles: tuple[str, ...]
    role_label: str
    in_department: bool = True
    # The ``post`` attribute (role-based learning): a post the hub's demo publishes
    # (tenant_portal/competencies/data/posts-sample.json), as a state's directory would set it.
    post: str = ""


PEOPLE = (
    DemoPerson("learner", "Asha", "Verma", (), "learner", post="section-officer"),
    DemoPerson(
        "creator", "Ravi", "Prasad", ("content_creator", "content_publisher"), "content creator"
    ),
    DemoPerson("mdo-admin", "Meena", "Iyer", ("mdo_admin",), "MDO admin"),
    DemoPerson(
        "tenant-admin", "Arjun", "Singh", ("tenant_admin", DEMO_ROLE), "tenant admin (no OTP)"
    ),
)


@dataclass(frozen=True)
class DemoAccount:
    tenant: str
    username: str
    password: str
    role: str

    def as_dict(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password, "role": self.role}


def accounts_path(home: KitHome) -> Path:
    return home.secrets / "demo-accounts.json"


def demo_passwords(code: str, home: KitHome) -> tuple[dict[str, str], set[str]]:
    """The tenant's demo passwords, generated on first use and then kept; and which of them
    were generated just now (only those are set in Keycloak, whose password policy refuses
    setting a recent password again)."""
    path = accounts_path(home)
    saved = read_json(path) or {}
    mine = dict(saved.get(code) or {})
    missing = {p.username for p in PEOPLE if not mine.get(p.username)}
    if missing:
        mine.update({name: new_password(12) for name in missing})
        write_private_json(path, {**saved, code: mine})
    return {k: str(v) for k, v in mine.items()}, missing


def demo_accounts(code: str, home: KitHome) -> list[DemoAccount]:
    """What ``up`` prints for a tenant (reads the kept passwords; creates none in Keycloak)."""
    saved = (read_json(accounts_path(home)) or {}).get(code) or {}
    return [
        DemoAccount(code, p.username, str(saved[p.username]), p.role_label)
        for p in PEOPLE
        if saved.get(p.username)
    ]


def forget_demo_accounts(code: str, home: KitHome) -> None:
    path = accounts_path(home)
    saved = read_json(path) or {}
    if saved.pop(code, None) is not None:
        write_private_json(path, saved)


def ensure_demo_accounts(spec: TenantSpec, api: AdminAPI, home: KitHome) -> list[DemoAccount]:
    """Create or repair the tenant's demo accounts in its realm; idempotent."""
    realm = spec.code
    passwords, new = demo_passwords(realm, home)
    departments = spec.spec.identity.departments
    department = departments[0].code if departments else None
    domain = spec.spec.domain
    for person in PEOPLE:
        user_id = _user_id(api, realm, person.username)
        created = user_id is None
        if user_id is None:
            user_id = api.post(
                f"/{q(realm)}/users",
                {
                    "username": person.username,
                    "enabled": True,
                    "email": f"{person.username}@demo.{domain}",
                    "emailVerified": True,
                    "firstName": person.first_name,
                    "lastName": person.last_name,
                    "requiredActions": [],
                    **({"attributes": {POST_ATTRIBUTE: [person.post]}} if person.post else {}),
                },
                f"demo account {realm}/{person.username}",
            ) or _user_id(api, realm, person.username)
        if user_id is None:
            raise KitError(f"demo account {realm}/{person.username} was not created")
        if created or person.username in new:
            api.put(
                f"/{q(realm)}/users/{user_id}/reset-password",
                {"type": "password", "value": passwords[person.username], "temporary": False},
                f"demo account {realm}/{person.username}: password",
            )
        _grant_roles(api, realm, user_id, person)
        if person.post and not created:
            _ensure_post(api, realm, user_id, person)
        if department and person.in_department:
            group = api.get(
                f"/{q(realm)}/group-by-path/departments/{q(department)}",
                f"department {realm}/{department}",
            )
            if group:
                api.put(
                    f"/{q(realm)}/users/{user_id}/groups/{group['id']}",
                    {},
                    f"demo account {realm}/{person.username}: department",
                )
    return demo_accounts(realm, home)


def _user_id(api: AdminAPI, realm: str, username: str) -> str | None:
    found = api.get(f"/{q(realm)}/users", f"users of {realm}", username=username, exact="true")
    for user in found or []:
        if user.get("username") == username:
            return str(user["id"])
    return None


def _ensure_post(api: AdminAPI, realm: str, user_id: str, person: DemoPerson) -> None:
    """An account made before demo learners had a post gets it (nothing else changes)."""
    what = f"demo account {realm}/{person.username}: post"
    rep = api.get(f"/{q(realm)}/users/{user_id}", what)
    if not rep or (rep.get("attributes") or {}).get(POST_ATTRIBUTE) == [person.post]:
        return
    attributes = {**(rep.get("attributes") or {}), POST_ATTRIBUTE: [person.post]}
    api.put(f"/{q(realm)}/users/{user_id}", {**rep, "attributes": attributes}, what)


def _grant_roles(api: AdminAPI, realm: str, user_id: str, person: DemoPerson) -> None:
    if not person.roles:
        return
    held = api.get(
        f"/{q(realm)}/users/{user_id}/role-mappings/realm", f"roles of {realm}/{person.username}"
    )
    held_names = {role["name"] for role in held or []}
    wanted: list[dict[str, Any]] = []
    for name in person.roles:
        if name in held_names:
            continue
        role = api.get(f"/{q(realm)}/roles/{q(name)}", f"role {realm}/{name}")
        if role:
            wanted.append({"id": role["id"], "name": role["name"]})
    if wanted:
        api.post(
            f"/{q(realm)}/users/{user_id}/role-mappings/realm",
            wanted,
            f"demo account {realm}/{person.username}: roles",
        )
