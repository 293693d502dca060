"""Plan, apply, drift and destroy: desired resources against what Keycloak holds.

``plan`` only reads. ``apply`` writes exactly the changes of a fresh plan, so a second apply
makes no write request at all. A realm that does not exist yet is created with one POST
carrying its settings, roles, groups and clients, as a realm import would.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from identity.admin import AdminAPI, q
from identity.desired import (
    ADMIN_ROLE,
    DEPARTMENTS_GROUP,
    LDAP_MAPPER,
    REALM_MANAGEMENT,
    USER_STORAGE,
    Federation,
    Resource,
    TenantRealm,
    desired_resources,
)
from identity.errors import IdentityError
from identity.vault import Vault

T = TypeVar("T")
# Kinds a new realm's POST carries inside its representation.
EMBEDDED = {"role", "group", "department", "client"}
# Lists whose order Keycloak does not keep or that mean a set.
UNORDERED = {"redirectUris", "webOrigins", "supportedLocales", "post.logout.redirect.uris"}


@dataclass(frozen=True)
class FieldChange:
    path: str
    live: Any
    desired: Any


@dataclass(frozen=True)
class Change:
    action: str  # create | update | delete
    resource: Resource
    fields: tuple[FieldChange, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        r = self.resource
        return {
            "action": self.action,
            "kind": r.kind,
            "realm": r.realm,
            "name": r.name,
            "tenant": r.tenant,
            "fields": [{"path": f.path, "live": f.live, "desired": f.desired} for f in self.fields],
        }

    def describe(self) -> str:
        sign = {"create": "+", "update": "~", "delete": "-"}[self.action]
        lines = [f"{sign} {self.resource.tenant}: {self.resource.label()} ({self.action})"]
        lines += [f"    {f.path}: {f.live!r} -> {f.desired!r}" for f in self.fields]
        return "\n".join(lines)


# --- comparison --------------------------------------------------------------------------


def diff(desired: Any, live: Any, path: str = "") -> list[FieldChange]:
    """Fields of ``desired`` that ``live`` lacks or holds differently; extra live fields pass."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return [FieldChange(path, live, desired)]
        changes: list[FieldChange] = []
        for key, value in desired.items():
            sub = f"{path}.{key}" if path else str(key)
            changes += diff(value, live.get(key), sub)
        return changes
    key = path.rsplit(".", 1)[-1]
    if key in UNORDERED:
        if _as_set(desired) != _as_set(live):
            return [FieldChange(path, live, desired)]
        return []
    if isinstance(desired, bool | int) and isinstance(live, str):
        # Attributes come back as strings.
        live = {"true": True, "false": False}.get(live, live)
    if desired != live:
        return [FieldChange(path, live, desired)]
    return []


def _as_set(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(v for v in value.split("##") if v)
    return frozenset(str(v) for v in value)


def _without(body: Mapping[str, Any], dotted: Iterable[str]) -> dict[str, Any]:
    """A deep copy of ``body`` without the dotted paths (secrets are never compared)."""
    result = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in body.items()}
    for path in dotted:
        head, _, rest = path.partition(".")
        if rest and isinstance(result.get(head), Mapping):
            result[head] = _without(result[head], [rest])
        else:
            result.pop(head, None)
    return result


# --- live state --------------------------------------------------------------------------


class LiveState:
    """Reads of one Keycloak, cached per reconciler run."""

    def __init__(self, api: AdminAPI) -> None:
        self.api = api
        self._cache: dict[tuple[str, ...], Any] = {}

    def _cached(self, key: tuple[str, ...], read: Callable[[], T]) -> T:
        if key not in self._cache:
            self._cache[key] = read()
        return cast(T, self._cache[key])

    def _get_object(self, path: str, what: str) -> dict[str, Any] | None:
        found = self.api.get(path, what)
        return dict(found) if isinstance(found, dict) else None

    def forget(self, realm: str) -> None:
        self._cache = {k: v for k, v in self._cache.items() if k[1] != realm}

    def realm(self, realm: str) -> dict[str, Any] | None:
        return self._cached(
            ("realm", realm), lambda: self._get_object(f"/{q(realm)}", f"realm {realm}")
        )

    def roles(self, realm: str) -> dict[str, dict[str, Any]]:
        def read() -> dict[str, dict[str, Any]]:
            roles = (
                self.api.get(f"/{q(realm)}/roles", f"roles of {realm}", briefRepresentation="false")
                or []
            )
            return {r["name"]: r for r in roles}

        return self._cached(("roles", realm), read)

    def default_roles(self, realm: str) -> set[str]:
        def read() -> set[str]:
            composites = self.api.get(
                f"/{q(realm)}/roles/default-roles-{q(realm)}/composites/realm",
                f"default roles of {realm}",
            )
            return {r["name"] for r in composites or []}

        return self._cached(("default-roles", realm), read)

    def admin_rights(self, realm: str) -> set[str]:
        """The ``realm-management`` roles that ``tenant_admin`` carries as composites."""

        def read() -> set[str]:
            management = self.client(realm, REALM_MANAGEMENT)
            if management is None or ADMIN_ROLE not in self.roles(realm):
                return set()
            composites = self.api.get(
                f"/{q(realm)}/roles/{q(ADMIN_ROLE)}/composites/clients/{management['id']}",
                f"rights of {realm}/{ADMIN_ROLE}",
            )
            return {r["name"] for r in composites or []}

        return self._cached(("admin-rights", realm), read)

    def departments_group(self, realm: str) -> dict[str, Any] | None:
        def read() -> dict[str, Any] | None:
            groups = self.api.get(
                f"/{q(realm)}/groups",
                f"groups of {realm}",
                search=DEPARTMENTS_GROUP,
                exact="true",
                briefRepresentation="false",
            )
            for group in groups or []:
                if (
                    group["name"] == DEPARTMENTS_GROUP
                    and group.get("path") == f"/{DEPARTMENTS_GROUP}"
                ):
                    return dict(group)
            return None

        return self._cached(("group", realm), read)

    def departments(self, realm: str) -> dict[str, dict[str, Any]]:
        def read() -> dict[str, dict[str, Any]]:
            parent = self.departments_group(realm)
            if parent is None:
                return {}
            children = self.api.get(
                f"/{q(realm)}/groups/{parent['id']}/children",
                f"departments of {realm}",
                briefRepresentation="false",
                max="1000",
            )
            return {g["name"]: g for g in children or []}

        return self._cached(("departments", realm), read)

    def client(self, realm: str, client_id: str) -> dict[str, Any] | None:
        def read() -> dict[str, Any] | None:
            found = self.api.get(
                f"/{q(realm)}/clients", f"client {realm}/{client_id}", clientId=client_id
            )
            return dict(found[0]) if found else None

        return self._cached(("client", realm, client_id), read)

    def idp(self, realm: str, alias: str) -> dict[str, Any] | None:
        return self._cached(
            ("idp", realm, alias),
            lambda: self._get_object(
                f"/{q(realm)}/identity-provider/instances/{q(alias)}", f"idp {realm}/{alias}"
            ),
        )

    def idp_mappers(self, realm: str, alias: str) -> dict[str, dict[str, Any]]:
        def read() -> dict[str, dict[str, Any]]:
            if self.idp(realm, alias) is None:
                return {}
            mappers = self.api.get(
                f"/{q(realm)}/identity-provider/instances/{q(alias)}/mappers",
                f"mappers of idp {realm}/{alias}",
            )
            return {m["name"]: m for m in mappers or []}

        return self._cached(("idp-mappers", realm, alias), read)

    def components(self, realm: str, parent: str | None, kind: str) -> dict[str, dict[str, Any]]:
        """Components of ``kind`` under ``parent`` (a realm's or a component's id), by name."""

        def read() -> dict[str, dict[str, Any]]:
            if parent is None:
                return {}
            found = self.api.get(
                f"/{q(realm)}/components", f"components of {realm}", parent=parent, type=kind
            )
            return {c["name"]: c for c in found or []}

        return self._cached(("components", realm, parent or "", kind), read)

    def ldap(self, realm: str, alias: str) -> dict[str, Any] | None:
        live = self.realm(realm)
        return self.components(realm, live["id"] if live else None, USER_STORAGE).get(alias)

    def ldap_mappers(self, realm: str, alias: str) -> dict[str, dict[str, Any]]:
        ldap = self.ldap(realm, alias)
        return self.components(realm, ldap["id"] if ldap else None, LDAP_MAPPER)

    def localization(self, realm: str, locale: str) -> dict[str, Any]:
        return self._cached(
            ("localization", realm, locale),
            lambda: (
                self._get_object(
                    f"/{q(realm)}/localization/{q(locale)}", f"texts of {realm} in {locale}"
                )
                or {}
            ),
        )

    def user_profile(self, realm: str) -> dict[str, Any]:
        return self._cached(
            ("user-profile", realm),
            lambda: (
                self._get_object(f"/{q(realm)}/users/profile", f"user profile of {realm}") or {}
            ),
        )

    def flow(self, realm: str, alias: str) -> dict[str, Any] | None:
        """The flow as the nested shape of :func:`identity.desired.browser_flow`."""

        def read() -> dict[str, Any] | None:
            flows = self.api.get(f"/{q(realm)}/authentication/flows", f"flows of {realm}") or []
            top = next((f for f in flows if f["alias"] == alias), None)
            if top is None:
                return None
            rows = (
                self.api.get(
                    f"/{q(realm)}/authentication/flows/{q(alias)}/executions",
                    f"flow {realm}/{alias}",
                )
                or []
            )
            return {
                "alias": alias,
                "description": top.get("description", ""),
                "executions": self._nest(realm, rows),
            }

        return self._cached(("flow", realm, alias), read)

    def _nest(self, realm: str, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        root: list[dict[str, Any]] = []
        stack: list[list[dict[str, Any]]] = [root]
        for row in rows:
            level = int(row.get("level", 0))
            del stack[level + 1 :]
            if row.get("authenticationFlow"):
                node: dict[str, Any] = {
                    "flow": row.get("displayName"),
                    "requirement": row.get("requirement"),
                    "executions": [],
                    "_id": row.get("id"),
                }
                stack[level].append(node)
                stack.append(node["executions"])
            else:
                node = {
                    "provider": row.get("providerId"),
                    "requirement": row.get("requirement"),
                    "_id": row.get("id"),
                }
                if row.get("authenticationConfig"):
                    config = (
                        self.api.get(
                            f"/{q(realm)}/authentication/config/{row['authenticationConfig']}",
                            f"flow config in {realm}",
                        )
                        or {}
                    )
                    node["config"] = {"alias": config.get("alias"), **config.get("config", {})}
                stack[level].append(node)
        return root


def _flatten(executions: Sequence[Mapping[str, Any]], prefix: str = "") -> dict[str, Any]:
    """A flow's executions as ``{"forms/auth-otp-form": "REQUIRED", ...}`` in flow order."""
    flat: dict[str, Any] = {}
    seen: dict[str, int] = {}
    for node in executions:
        name = f"{prefix}{node.get('flow') or node.get('provider')}"
        # A provider used twice at one level (two conditions) is told apart by its place.
        seen[name] = seen.get(name, 0) + 1
        name = f"{name}#{seen[name]}" if seen[name] > 1 else name
        flat[name] = node.get("requirement")
        if node.get("config"):
            flat[f"{name} config"] = dict(node["config"])
        if "executions" in node:
            flat |= _flatten(node["executions"], f"{name}/")
    return flat


# --- the reconciler ----------------------------------------------------------------------


ThemeDrift = Callable[[TenantRealm], list[str]]
ThemeWrite = Callable[[TenantRealm], None]


@dataclass
class Reconciler:
    """Compares and converges one Keycloak with a :class:`Federation`.

    ``theme_drift`` and ``theme_write`` handle login themes, which are files on the Keycloak
    server rather than admin-API objects; the caller supplies them for the target at hand.
    """

    api: AdminAPI
    federation: Federation
    theme_drift: ThemeDrift | None = None
    theme_write: ThemeWrite | None = None
    # Keycloak's vault, when this target lets the reconciler fill it (the local target does;
    # production targets deliver vault files with their own secret store).
    vault: Vault | None = None
    live: LiveState = field(init=False)

    def __post_init__(self) -> None:
        self.live = LiveState(self.api)

    def _tenant(self, code: str) -> TenantRealm:
        return next(t for t in self.federation.tenants if t.code == code)

    # plan -------------------------------------------------------------------------------

    def plan(self, codes: Iterable[str] | None = None) -> list[Change]:
        wanted = set(codes) if codes is not None else None
        known = {t.code for t in self.federation.tenants}
        if wanted is not None and wanted - known:
            raise IdentityError(f"no tenant spec for {', '.join(sorted(wanted - known))}")
        hub = self.federation.hub
        hub_missing = hub is not None and self.live.realm(hub.code) is None
        if wanted is not None and hub is not None and hub.code not in wanted and hub_missing:
            raise IdentityError(
                f"{', '.join(sorted(wanted))}: the hub realm {hub.code} does not exist yet; "
                f"apply it first (karmayogi identity apply {hub.code})"
            )
        changes: list[Change] = []
        desired = desired_resources(self.federation, wanted)
        new_realms: set[str] = set()
        for resource in desired:
            if resource.kind == "vault-secret":
                change = self._compare_vault(resource)
                if change is not None:
                    changes.append(change)
                continue
            if resource.kind == "realm" and self.live.realm(resource.realm) is None:
                new_realms.add(resource.realm)
            if resource.realm in new_realms:
                changes.append(Change("create", resource))
                continue
            change = self._compare(resource)
            if change is not None:
                changes.append(change)
            if resource.kind == "group" and resource.realm not in new_realms:
                changes += self._extra_departments(resource, desired)
        for tenant in self.federation.tenants:
            if (
                (wanted is None or tenant.code in wanted)
                and tenant.login_theme
                and self.theme_drift
            ):
                drifted = self.theme_drift(tenant)
                if drifted:
                    changes.append(
                        Change(
                            "update",
                            Resource("theme", tenant.code, tenant.login_theme, tenant.code),
                            tuple(FieldChange(path, "differs", "rendered") for path in drifted),
                        )
                    )
        return changes

    def _compare(self, resource: Resource) -> Change | None:
        live = self._read(resource)
        if live is None:
            return Change("create", resource)
        desired = _without(resource.body, resource.write_only_fields)
        if resource.kind == "flow":
            fields = diff({"description": desired["description"]}, live)
            fields += diff(
                _flatten(desired["executions"]), _flatten(live["executions"]), "executions"
            )
            want, have = list(_flatten(desired["executions"])), list(_flatten(live["executions"]))
            if not fields and want != have:
                fields.append(FieldChange("executions.order", have, want))
        elif resource.kind == "client":
            fields = self._diff_client(desired, live)
        else:
            fields = diff(desired, live)
        hidden = set(resource.secret_fields)
        fields = [
            FieldChange(f.path, "(secret)", "(secret)") if f.path in hidden else f for f in fields
        ]
        return Change("update", resource, tuple(fields)) if fields else None

    def _compare_vault(self, resource: Resource) -> Change | None:
        if self.vault is None:
            return None
        value = resource.body.get("value")
        if value is None:
            raise IdentityError(
                f"{resource.tenant}: secret {resource.name!r} is not in the secret store"
            )
        live = self.vault.read(resource.realm, resource.name)
        if live is None:
            return Change("create", resource)
        if live != value:
            return Change("update", resource, (FieldChange("value", "(secret)", "(secret)"),))
        return None

    def _diff_client(
        self, desired: Mapping[str, Any], live: Mapping[str, Any]
    ) -> list[FieldChange]:
        plain = {k: v for k, v in desired.items() if k != "protocolMappers"}
        fields = diff(plain, live)
        live_mappers = {m["name"]: m for m in live.get("protocolMappers", [])}
        for mapper in desired.get("protocolMappers", []):
            fields += diff(
                mapper, live_mappers.get(mapper["name"]), f"protocolMappers[{mapper['name']}]"
            )
        return fields

    def _read(self, resource: Resource) -> dict[str, Any] | None:
        realm, name, kind = resource.realm, resource.name, resource.kind
        live = self.live
        if kind in ("realm", "bindings"):
            return live.realm(realm)
        if kind == "role":
            return live.roles(realm).get(name)
        if kind == "default-role":
            return {"name": name} if name in live.default_roles(realm) else None
        if kind == "admin-right":
            return {"name": name} if name in live.admin_rights(realm) else None
        if kind == "group":
            return live.departments_group(realm)
        if kind == "department":
            return live.departments(realm).get(name)
        if kind in ("client", "builtin-client"):
            return live.client(realm, name)
        if kind == "idp":
            return live.idp(realm, name)
        if kind == "idp-mapper":
            alias, _, mapper = name.partition("/")
            return live.idp_mappers(realm, alias).get(mapper)
        if kind == "localization":
            texts = live.localization(realm, name)
            return {k: texts[k] for k in resource.body if k in texts} or None
        if kind == "ldap":
            return live.ldap(realm, name)
        if kind == "ldap-mapper":
            alias, _, mapper = name.partition("/")
            return live.ldap_mappers(realm, alias).get(mapper)
        if kind == "profile-attribute":
            attributes = live.user_profile(realm).get("attributes", [])
            return next((dict(a) for a in attributes if a.get("name") == name), None)
        if kind == "flow":
            return live.flow(realm, name)
        raise IdentityError(f"unknown resource kind {kind}")

    def _extra_departments(self, group: Resource, desired: Sequence[Resource]) -> list[Change]:
        wanted = {r.name for r in desired if r.kind == "department" and r.realm == group.realm}
        return [
            Change(
                "delete", Resource("department", group.realm, name, group.tenant, {"id": g["id"]})
            )
            for name, g in sorted(self.live.departments(group.realm).items())
            if name not in wanted
        ]

    # apply ------------------------------------------------------------------------------

    def apply(self, codes: Iterable[str] | None = None) -> list[Change]:
        changes = self.plan(codes)
        # A directory Keycloak could not reach would take every sign-in down with it: check
        # before the first write, so a refused apply leaves everything as it was.
        for change in changes:
            if change.resource.kind == "ldap":
                _check_reachable(change.resource)
        created: set[str] = set()
        for change in changes:
            resource = change.resource
            if resource.kind == "realm" and change.action == "create":
                self._create_realm(
                    resource, [c.resource for c in changes if c.resource.realm == resource.realm]
                )
                created.add(resource.realm)
            elif resource.realm in created and resource.kind in EMBEDDED:
                continue
            else:
                self._apply_one(change)
        return changes

    def _create_realm(self, realm: Resource, members: Sequence[Resource]) -> None:
        rep: dict[str, Any] = dict(realm.body)
        rep["roles"] = {"realm": [dict(r.body) for r in members if r.kind == "role"]}
        departments = [dict(r.body) for r in members if r.kind == "department"]
        if any(r.kind == "group" for r in members):
            rep["groups"] = [{"name": DEPARTMENTS_GROUP, "subGroups": departments}]
        rep["clients"] = [dict(r.body) for r in members if r.kind == "client"]
        self.api.post("", rep, f"{realm.tenant}: create realm {realm.realm}")
        # The token predates the realm: fetch one that carries its admin roles.
        self.api.renew_token()
        self.live.forget(realm.realm)

    def _apply_one(self, change: Change) -> None:
        r = change.resource
        what = f"{r.tenant}: {change.action} {r.label()}"
        realm = f"/{q(r.realm)}"
        api = self.api
        if r.kind in ("realm", "bindings"):
            api.put(realm, dict(r.body), what)
        elif r.kind == "role":
            if change.action == "create":
                api.post(f"{realm}/roles", dict(r.body), what)
            else:
                api.put(f"{realm}/roles/{q(r.name)}", dict(r.body), what)
        elif r.kind == "default-role":
            role = api.get(f"{realm}/roles/{q(r.name)}", what)
            api.post(f"{realm}/roles/default-roles-{q(r.realm)}/composites", [role], what)
        elif r.kind == "admin-right":
            management = self.live.client(r.realm, REALM_MANAGEMENT) or {}
            right = api.get(f"{realm}/clients/{management.get('id')}/roles/{q(r.name)}", what)
            api.post(f"{realm}/roles/{q(ADMIN_ROLE)}/composites", [right], what)
        elif r.kind == "group":
            if change.action == "create":
                api.post(f"{realm}/groups", dict(r.body), what)
                self.live.forget(r.realm)
            else:
                group = self.live.departments_group(r.realm) or {}
                api.put(f"{realm}/groups/{group['id']}", {**group, **r.body}, what)
        elif r.kind == "department":
            self._apply_department(change, realm, what)
        elif r.kind == "client":
            self._apply_client(change, realm, what)
        elif r.kind == "builtin-client":
            # Keycloak makes it with every realm: only ever updated (also right after a new
            # realm's POST, where the plan said "create").
            live = self.live.client(r.realm, r.name)
            if live is None:
                raise IdentityError(f"{what}: Keycloak made no {r.name} client in {r.realm}")
            self._put_client(realm, live, r.body, what)
        elif r.kind == "idp":
            if change.action == "create":
                api.post(f"{realm}/identity-provider/instances", dict(r.body), what)
            else:
                live = self.live.idp(r.realm, r.name) or {}
                body = {**live, **r.body, "config": {**live.get("config", {}), **r.body["config"]}}
                api.put(f"{realm}/identity-provider/instances/{q(r.name)}", body, what)
        elif r.kind == "idp-mapper":
            base = f"{realm}/identity-provider/instances/{q(r.body['identityProviderAlias'])}"
            if change.action == "create":
                api.post(f"{base}/mappers", dict(r.body), what)
            else:
                alias, _, name = r.name.partition("/")
                live = self.live.idp_mappers(r.realm, alias)[name]
                body = {**live, **r.body, "config": {**live.get("config", {}), **r.body["config"]}}
                api.put(f"{base}/mappers/{live['id']}", body, what)
        elif r.kind == "profile-attribute":
            self.live.forget(r.realm)
            profile = self.live.user_profile(r.realm)
            attributes = [a for a in profile.get("attributes", []) if a.get("name") != r.name]
            live = next((a for a in profile.get("attributes", []) if a.get("name") == r.name), {})
            api.put(
                f"{realm}/users/profile",
                {**profile, "attributes": [*attributes, {**live, **r.body}]},
                what,
            )
            self.live.forget(r.realm)
        elif r.kind == "localization":
            # Keycloak's import of realm texts adds or replaces the given keys only.
            api.post(f"{realm}/localization/{q(r.name)}", dict(r.body), what)
        elif r.kind in ("ldap", "ldap-mapper"):
            self._apply_component(change, realm, what)
        elif r.kind == "vault-secret":
            if self.vault is not None:
                self.vault.write(r.realm, r.name, str(r.body["value"]))
        elif r.kind == "flow":
            self._apply_flow(change, realm, what)
        elif r.kind == "theme":
            if self.theme_write is not None:
                self.theme_write(self._tenant(r.tenant))
        else:
            raise IdentityError(f"{what}: unknown resource kind")

    def _apply_component(self, change: Change, realm: str, what: str) -> None:
        r = change.resource
        alias, _, mapper = r.name.partition("/")
        if r.kind == "ldap":
            live_realm = self.live.realm(r.realm) or {}
            parent, live = live_realm.get("id"), self.live.ldap(r.realm, alias)
        else:
            ldap = self.live.ldap(r.realm, alias)
            if ldap is None:  # created earlier in this apply
                self.live.forget(r.realm)
                ldap = self.live.ldap(r.realm, alias)
            if ldap is None:
                raise IdentityError(f"{what}: the directory {alias} is missing")
            parent, live = ldap["id"], self.live.ldap_mappers(r.realm, alias).get(mapper)
        if change.action == "create" or live is None:
            self.api.post(f"{realm}/components", {**r.body, "parentId": parent}, what)
        else:
            body = {**live, **r.body, "config": {**live.get("config", {}), **r.body["config"]}}
            self.api.put(f"{realm}/components/{live['id']}", body, what)
        self.live.forget(r.realm)

    def _apply_department(self, change: Change, realm: str, what: str) -> None:
        r = change.resource
        if change.action == "delete":
            self.api.delete(f"{realm}/groups/{r.body['id']}", what)
            return
        parent = self.live.departments_group(r.realm)
        if parent is None:  # created earlier in this apply
            self.live.forget(r.realm)
            parent = self.live.departments_group(r.realm)
        if parent is None:
            raise IdentityError(f"{what}: the {DEPARTMENTS_GROUP} group is missing")
        if change.action == "create":
            self.api.post(f"{realm}/groups/{parent['id']}/children", dict(r.body), what)
        else:
            live = self.live.departments(r.realm)[r.name]
            self.api.put(f"{realm}/groups/{live['id']}", {**live, **r.body}, what)

    def _put_client(
        self, realm: str, live: Mapping[str, Any], body: Mapping[str, Any], what: str
    ) -> None:
        """Write the kit's fields (and attributes) over the live client; mappers apart."""
        merged = {
            **live,
            **body,
            "attributes": {**live.get("attributes", {}), **body.get("attributes", {})},
        }
        merged.pop("protocolMappers", None)
        self.api.put(f"{realm}/clients/{live['id']}", merged, what)

    def _apply_client(self, change: Change, realm: str, what: str) -> None:
        r = change.resource
        if change.action == "create":
            self.api.post(f"{realm}/clients", dict(r.body), what)
            return
        live = self.live.client(r.realm, r.name) or {}
        body = {k: v for k, v in r.body.items() if k != "protocolMappers"}
        plain_fields = [f for f in change.fields if not f.path.startswith("protocolMappers[")]
        if plain_fields:
            self._put_client(realm, live, body, what)
        live_mappers = {m["name"]: m for m in live.get("protocolMappers", [])}
        for mapper in r.body.get("protocolMappers", []):
            current = live_mappers.get(mapper["name"])
            if current is None:
                self.api.post(f"{realm}/clients/{live['id']}/protocol-mappers/models", mapper, what)
            elif diff(mapper, current):
                self.api.put(
                    f"{realm}/clients/{live['id']}/protocol-mappers/models/{current['id']}",
                    {
                        **current,
                        **mapper,
                        "config": {**current.get("config", {}), **mapper["config"]},
                    },
                    what,
                )

    def _apply_flow(self, change: Change, realm: str, what: str) -> None:
        """Create the flow, or empty it and rebuild its executions in place.

        Rebuilding in place keeps the flow's alias and id, so the realm and identity
        providers bound to it never point at a missing flow.
        """
        r = change.resource
        alias = r.name
        if change.action == "create":
            self.api.post(
                f"{realm}/authentication/flows",
                {
                    "alias": alias,
                    "description": r.body["description"],
                    "providerId": "basic-flow",
                    "topLevel": True,
                    "builtIn": False,
                },
                what,
            )
        else:
            live = self.live.flow(r.realm, alias) or {"executions": []}
            if live.get("description", "") != r.body["description"]:
                flows = self.api.get(f"{realm}/authentication/flows", what) or []
                flow = next(f for f in flows if f["alias"] == alias)
                self.api.put(
                    f"{realm}/authentication/flows/{flow['id']}",
                    {**flow, "description": r.body["description"]},
                    what,
                )
            for node in live["executions"]:
                self.api.delete(f"{realm}/authentication/executions/{node['_id']}", what)
        self._add_executions(realm, alias, r.body["executions"], what)

    def _add_executions(
        self, realm: str, parent: str, nodes: Sequence[Mapping[str, Any]], what: str
    ) -> None:
        base = f"{realm}/authentication/flows/{q(parent)}/executions"
        for node in nodes:
            if "flow" in node:
                self.api.post(
                    f"{base}/flow",
                    {
                        "alias": node["flow"],
                        "type": "basic-flow",
                        "provider": "registration-page-form",
                        "description": "",
                    },
                    what,
                )
            else:
                self.api.post(f"{base}/execution", {"provider": node["provider"]}, what)
            # The newest execution at this level is the one just added.
            rows = self.api.get(base, what) or []
            level0 = [row for row in rows if row.get("level", 0) == 0]
            added = level0[-1]
            self.api.put(base, {**added, "requirement": node["requirement"]}, what)
            if "config" in node:
                config = dict(node["config"])
                self.api.post(
                    f"{realm}/authentication/executions/{added['id']}/config",
                    {"alias": config.pop("alias"), "config": config},
                    what,
                )
            if "flow" in node:
                self._add_executions(realm, node["flow"], node["executions"], what)

    # directories ------------------------------------------------------------------------

    def sync_directory(self, code: str, alias: str, *, full: bool = False) -> dict[str, int]:
        """Sync a directory's users now: those changed since the last sync, or (``full``)
        all of them. Returns Keycloak's counts: added, updated, removed, failed."""
        ldap = self.live.ldap(code, alias)
        if ldap is None:
            raise IdentityError(f"{code}: no directory {alias!r} in realm {code}; apply it first")
        result = self.api.trigger(
            f"/{q(code)}/user-storage/{q(ldap['id'])}/sync",
            f"{code}: sync directory {alias}",
            action="triggerFullSync" if full else "triggerChangedUsersSync",
        )
        counts = result if isinstance(result, dict) else {}
        return {k: int(counts.get(k, 0)) for k in ("added", "updated", "removed", "failed")}

    # destroy ----------------------------------------------------------------------------

    def destroy(
        self, code: str, hub: str | None, theme_remove: Callable[[str], None] | None = None
    ) -> list[str]:
        """Remove the tenant's realm and its clients in the hub realm; nothing else.

        A hub on another deployment (``federation.remote_hub``) is not touched: its clients
        for this tenant are its operator's to remove (``infra.keycloak.membership``).
        """
        removed: list[str] = []
        remote = self.federation.remote_hub
        if remote is not None and hub == remote.code:
            hub = None
        if hub is not None and hub != code and self.live.realm(hub) is not None:
            for client_id in (f"broker-{code}", f"federation-{code}"):
                client = self.live.client(hub, client_id)
                if client is not None:
                    self.api.delete(
                        f"/{q(hub)}/clients/{client['id']}",
                        f"{code}: delete client {hub}/{client_id}",
                    )
                    removed.append(f"client {hub}/{client_id}")
        if self.live.realm(code) is not None:
            self.api.delete(f"/{q(code)}", f"{code}: delete realm {code}")
            removed.append(f"realm {code}")
        self.live.forget(code)
        if self.vault is not None:
            removed += [f"vault secret {name}" for name in self.vault.remove_realm(code)]
        if theme_remove is not None:
            theme_remove(code)
        return removed


def _check_reachable(resource: Resource) -> None:
    """Connect to the directory's first reachable URL, or refuse naming what failed."""
    urls = str((resource.body["config"].get("connectionUrl") or [""])[0]).split()
    problems = []
    for url in urls:
        parts = urlsplit(url)
        port = parts.port or (636 if parts.scheme == "ldaps" else 389)
        try:
            with socket.create_connection((parts.hostname or "", port), timeout=5):
                return
        except OSError as exc:
            problems.append(f"{url} ({exc.strerror or exc})")
    raise IdentityError(
        f"{resource.tenant}: directory {resource.name}: cannot reach "
        f"{', '.join(problems) or 'it: no connectionUrl'}; nothing was applied"
    )


def plan_as_json(changes: Sequence[Change]) -> list[dict[str, Any]]:
    return [c.as_dict() for c in changes]


__all__ = ["Change", "FieldChange", "Path", "Reconciler", "diff", "plan_as_json"]
