"""Membership of a federation across deployments, on the local target (DESIGN §10).

The handshake between two operators, each running these on their own deployment:

1. the tenant's ``request`` writes a join request signed with its portal's federation key;
2. the hub's ``admit`` verifies it (in the hub portal, which keeps the nonces and members),
   makes the member's ``federation-`` and ``broker-`` clients in the hub realm, records the
   member and writes a credentials file (0600) signed with the hub portal's key;
3. the tenant's ``accept`` verifies that file against the keys of the hub its spec names,
   keeps the secrets in its secret store and the hub's whereabouts in its home, points its
   realm's identity provider at the hub realm, restarts its portal with a client in the hub
   realm, and runs a first sync.

The portal owns the documents and the member list (``tenant_portal/federation``, through its
management commands); this module only carries files, Keycloak clients and secrets between
them. Nothing is recorded when a step is refused, and clients made for a refused admission
are deleted again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from identity.desired import RemoteHub
from infra.errors import KitError
from infra.home import KitHome, write_private_text
from infra.keycloak.membership import (
    MemberClients,
    MemberSecrets,
    admit_member,
    member_client_state,
    remove_member,
    resume_member,
    rotate_member_secrets,
    suspend_member,
)
from infra.render.inputs import BROKER_CLIENT_SECRET, FEDERATION_CLIENT_SECRET, HubLink
from infra.spec import TenantSpec
from infra.targets.local.federation import manage_output, sync_tenant
from infra.targets.local.portals import start_portal, stop_portal
from infra.targets.local.render import (
    LocalSecretStore,
    browser_keycloak_url,
    hub_links,
    save_hub_link,
)
from infra.targets.local.runtime import (
    admin_api,
    local_keycloak,
    reconciler_for,
    sync_truststore,
)

Progress = Callable[[str], None]
MEMBER_ACTIONS = ("suspend", "resume", "remove")
HUB_TIMEOUT = 10.0


class MembershipError(KitError):
    pass


def _save_credentials(out: Path, document: str) -> None:
    """The credentials file: it holds secrets, so only its owner may read it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_private_text(out, document + "\n")


def _read_document(path: Path, what: str) -> Path:
    if not path.is_file():
        raise MembershipError(f"{path}: no such {what}")
    return path.resolve()


@dataclass
class LocalMembership:
    """The handshake and the member list, for the specs of one local home."""

    specs: Sequence[TenantSpec]
    home: KitHome
    env: dict[str, str]

    # --- whose side ------------------------------------------------------------------------

    def _hub(self) -> TenantSpec:
        hub = next((s for s in self.specs if s.is_hub), None)
        if hub is None:
            raise MembershipError(
                "no hub among these specs: admitting and managing members is done on the "
                "hub's deployment (give its folder with --tenants)"
            )
        return hub

    def _member_side(self, code: str) -> TenantSpec:
        spec = next((s for s in self.specs if s.code == code), None)
        if spec is None:
            raise MembershipError(f"no tenant spec with code {code!r} among these specs")
        if spec.is_hub or any(s.is_hub for s in self.specs) or spec.hub_url is None:
            raise MembershipError(
                f"{code}: its hub runs in this deployment, so it is a member already; the "
                "handshake is for a hub run elsewhere (a spec naming it as {code, url})"
            )
        return spec

    def _keycloak_url(self) -> str:
        return browser_keycloak_url(self.home, local_keycloak(self.env).url)

    def _manage(
        self, code: str, *args: str, stdin: str | None = None, about: Path | None = None
    ) -> str:
        label = str(about) if about is not None else None
        return manage_output(code, self.home, self.env, *args, stdin=stdin, about=label)

    # --- the handshake ---------------------------------------------------------------------

    def request(self, code: str, out: Path) -> dict[str, Any]:
        """Write ``code``'s join request to ``out``; what it says."""
        spec = self._member_side(code)
        redirect = f"{self._keycloak_url()}/realms/{code}/broker/{spec.hub_code}/endpoint"
        token = self._manage(code, "federation_request", "--broker-redirect-uri", redirect).strip()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(token + "\n", encoding="utf-8")
        return {"code": code, "hub": spec.hub_code, "hubUrl": spec.hub_url, "file": str(out)}

    def admit(
        self, request: Path, out: Path, admitted_by: str, max_age: int | None = None
    ) -> dict[str, Any]:
        """Admit the tenant whose join request is ``request``; its credentials go to ``out``.
        ``max_age`` (seconds) overrides how old a request may be (the portal's default)."""
        hub = self._hub()
        path = _read_document(request, "join request")
        age = ["--max-age", str(max_age)] if max_age is not None else []
        fields = json.loads(
            self._manage(hub.code, "federation_admit", str(path), "--check", *age, about=request)
        )
        member = str(fields["code"])
        if any(s.code == member for s in self.specs):
            raise MembershipError(
                f"{request}: {member} is a tenant of this deployment already (its spec is in the "
                "folder); a code is admitted once"
            )
        api = admin_api(local_keycloak(self.env))
        secrets = admit_member(
            api,
            hub.code,
            MemberClients(
                code=member,
                display_name=str(fields["name"]),
                keys_url=str(fields["keysUrl"]),
                broker_redirect_uri=str(fields["brokerRedirectUri"]),
            ),
        )
        recorded = False
        try:
            self._manage(
                hub.code,
                "federation_admit",
                str(path),
                "--admitted-by",
                admitted_by,
                *age,
                about=request,
            )
            recorded = True
            credentials = self._credentials(hub, member, secrets)
        except KitError:
            # Half an admission is none: the clients go, and so does the record.
            remove_member(api, hub.code, member)
            if recorded:
                self._manage(hub.code, "federation_member", "remove", member, "--by", admitted_by)
            raise
        _save_credentials(out, credentials)
        return {**fields, "credentials": str(out)}

    def _credentials(self, hub: TenantSpec, member: str, secrets: MemberSecrets) -> str:
        document = {
            "member": member,
            "issuer": f"{self._keycloak_url()}/realms/{hub.code}",
            "federationClientId": f"federation-{member}",
            "federationClientSecret": secrets.federation_secret,
            "brokerClientId": f"broker-{member}",
            "brokerClientSecret": secrets.broker_secret,
        }
        return self._manage(
            hub.code, "federation_credentials", "sign", stdin=json.dumps(document)
        ).strip()

    def accept(self, code: str, credentials: Path, progress: Progress) -> str:
        """Take the hub's credentials into ``code``'s deployment and run a first sync."""
        spec = self._member_side(code)
        path = _read_document(credentials, "credentials file")
        payload = json.loads(
            self._manage(
                code,
                "federation_credentials",
                "verify",
                str(path),
                "--hub-url",
                str(spec.hub_url).rstrip("/"),
                about=credentials,
            )
        )
        if payload.get("hub") != spec.hub_code:
            raise MembershipError(
                f"{credentials}: the credentials are from hub {payload.get('hub')!r}, but {code}'s "
                f"spec names {spec.hub_code!r}"
            )
        try:  # the issuer must be a realm of that hub, as the reconciler will require
            RemoteHub(str(spec.hub_code), str(spec.hub_code), str(payload.get("issuer", "")))
        except ValueError as exc:
            raise MembershipError(f"{credentials}: {exc}") from None
        LocalSecretStore(self.home).put(
            code,
            {
                FEDERATION_CLIENT_SECRET: str(payload["federationClientSecret"]),
                BROKER_CLIENT_SECRET: str(payload["brokerClientSecret"]),
            },
        )
        link = HubLink(
            code=str(payload["hub"]),
            name=str(payload.get("hubName") or payload["hub"]),
            url=str(spec.hub_url).rstrip("/"),
            issuer=str(payload["issuer"]),
        )
        save_hub_link(code, link, self.home)
        progress(f"{code}: credentials of hub {link.code} stored; its realm is {link.issuer}")
        kc = local_keycloak(self.env)
        changes = reconciler_for(self.specs, kc).apply([code])
        sync_truststore(self.specs, kc, [code])
        progress(f"realm {code}: {len(changes)} change(s) applied (sign-in through {link.code})")
        stop_portal(code, self.home)
        start_portal(spec, list(self.specs), self.home, kc.url, self.env)
        progress(f"portal {code}: restarted with its client in the hub realm")
        return sync_tenant(code, self.home, self.env)

    def rotate(self, code: str, out: Path) -> dict[str, Any]:
        """New secrets for a member's clients (the old ones stop working at once) and a new
        credentials file for it to accept."""
        hub = self._hub()
        api = admin_api(local_keycloak(self.env))
        self._require_member(hub, code)
        secrets = rotate_member_secrets(api, hub.code, code)
        _save_credentials(out, self._credentials(hub, code, secrets))
        return {"code": code, "credentials": str(out)}

    # --- the member list -------------------------------------------------------------------

    def members(self) -> list[dict[str, Any]]:
        """Every member the hub portal keeps, with its clients' state in the hub realm."""
        hub = self._hub()
        rows: list[dict[str, Any]] = json.loads(
            self._manage(hub.code, "federation_members", "--json")
        )
        api = admin_api(local_keycloak(self.env))
        for row in rows:
            row["clients"] = member_client_state(api, hub.code, str(row["code"]))
        return rows

    def _require_member(self, hub: TenantSpec, code: str) -> dict[str, Any]:
        rows = json.loads(self._manage(hub.code, "federation_members", "--json"))
        row = next((r for r in rows if r.get("code") == code), None)
        if row is None:
            raise MembershipError(f"{code} is not a member of {hub.code}'s federation")
        return dict(row)

    def change(self, action: str, code: str, *, withdraw: bool, by: str) -> str:
        """Suspend, resume or remove a member: in the hub portal (whose next check of the
        caller refuses it) and in the hub realm (its clients disabled and sessions ended)."""
        if action not in MEMBER_ACTIONS:
            raise MembershipError(f"unknown action {action!r}; one of {', '.join(MEMBER_ACTIONS)}")
        hub = self._hub()
        row = self._require_member(hub, code)
        api = admin_api(local_keycloak(self.env))
        args = ["federation_member", action, code, "--by", by]
        if withdraw:
            args.append("--withdraw-courses")
        report = self._manage(hub.code, *args).strip()
        admitted = row.get("source") != "spec"
        if action == "suspend":
            suspend_member(api, hub.code, code)
        elif action == "resume":
            resume_member(api, hub.code, code)
        elif admitted:
            # A member from this deployment's own folder keeps the clients its spec gives it
            # until the spec leaves the folder (`karmayogi tenant remove`).
            remove_member(api, hub.code, code)
        return report

    # --- the member's view of its hub ------------------------------------------------------

    def hub_status(self, code: str) -> dict[str, Any] | None:
        """For a tenant whose hub runs elsewhere: whether the hub answers, and whether its
        realm gives this tenant a token (and for how long), or why not. None when the tenant
        has accepted no credentials."""
        link = hub_links(self.home).get(code)
        if link is None:
            return None
        state: dict[str, Any] = {"hub": link.code, "url": link.url, "issuer": link.issuer}
        try:
            answer = httpx.get(f"{link.url}/healthz", timeout=HUB_TIMEOUT)
            state["reachable"] = answer.status_code == 200
            state["reachability"] = f"HTTP {answer.status_code}"
        except httpx.HTTPError as exc:
            state["reachable"] = False
            state["reachability"] = f"unreachable: {exc.__class__.__name__}"
        secret = LocalSecretStore(self.home).values(code)[FEDERATION_CLIENT_SECRET]
        try:
            answer = httpx.post(
                f"{link.issuer}/protocol/openid-connect/token",
                data={"grant_type": "client_credentials"},
                auth=(f"federation-{code}", secret),
                timeout=HUB_TIMEOUT,
            )
            body = answer.json() if answer.content else {}
        except (httpx.HTTPError, ValueError) as exc:
            state["token"] = f"no token: {exc.__class__.__name__}"
            return state
        if answer.status_code == 200 and isinstance(body, dict) and "expires_in" in body:
            state["token"] = f"granted, expires in {int(body['expires_in'])} s"
        else:
            error = body.get("error", "") if isinstance(body, dict) else ""
            detail = body.get("error_description", "") if isinstance(body, dict) else ""
            state["token"] = (
                f"refused by the hub realm (HTTP {answer.status_code} {error}: {detail})"
            )
        return state
