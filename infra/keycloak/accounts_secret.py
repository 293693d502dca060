"""The kit's Keycloak operator accounts kept in a Kubernetes Secret, by the keycloak chart's
realm Job.

The realm step makes the operator admin and the reconciler's client once, from Keycloak's
temporary bootstrap client, which it then deletes; every later run signs in with the accounts it
kept. On a VM they are a 0600 file on the Keycloak host. A Job's files go with its Pod, so on
Kubernetes the step keeps them in the Secret ``keycloak-<deployment>-accounts`` of Keycloak's
namespace, through the API server, with the Job's own service account: its Role may read and
change that one Secret and create Secrets, nothing else (charts/keycloak/templates/job-realms.yaml).
The Job names the Secret in ``KARMAYOGI_ACCOUNTS_SECRET`` (``<namespace>/<name>``).
"""

from __future__ import annotations

import base64
import contextlib
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from infra.errors import KitError

ENV = "KARMAYOGI_ACCOUNTS_SECRET"
KEY = "accounts.json"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class AccountsSecret:
    namespace: str
    name: str
    api_url: str  # https://<API server>
    token: str = ""  # the service account's bearer token (never shown)
    ca_file: str = ""  # the API server's CA bundle

    @classmethod
    def in_cluster(
        cls, named: str, environ: Mapping[str, str] | None = None, root: Path = SERVICE_ACCOUNT
    ) -> AccountsSecret:
        """The Secret ``named`` (``<namespace>/<name>``), reached as the Pod's service account."""
        env = os.environ if environ is None else environ
        namespace, _, name = named.partition("/")
        if not namespace or not name:
            raise KitError(f"{ENV}: {named!r} is not <namespace>/<name>")
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
        token_file = root / "token"
        if not host or not token_file.is_file():
            raise KitError(
                f"{ENV}: no Kubernetes API here (a Pod's service account token and "
                "KUBERNETES_SERVICE_HOST are needed)"
            )
        return cls(
            namespace,
            name,
            f"https://{host}:{port}",
            token_file.read_text(encoding="utf-8").strip(),
            str(root / "ca.crt"),
        )

    def _call(self, method: str, body: Any = None, *, create: bool = False) -> httpx.Response:
        path = f"/api/v1/namespaces/{self.namespace}/secrets"
        if not create:
            path += f"/{self.name}"
        headers = {"Authorization": f"Bearer {self.token}"}
        if method == "PATCH":
            headers["Content-Type"] = "application/merge-patch+json"
        verify: ssl.SSLContext | bool = True
        if self.ca_file:
            try:
                verify = ssl.create_default_context(cafile=self.ca_file)
            except OSError as exc:
                raise KitError(f"secret {self}: cannot read {self.ca_file} ({exc})") from None
        try:
            with httpx.Client(base_url=self.api_url, verify=verify) as client:
                return client.request(method, path, json=body, headers=headers, timeout=30.0)
        except httpx.HTTPError as exc:
            raise KitError(f"secret {self}: the Kubernetes API cannot be reached ({exc})") from None

    def _refused(self, response: httpx.Response, doing: str) -> KitError:
        reason = ""
        with contextlib.suppress(ValueError):
            reason = str(response.json().get("reason", ""))
        return KitError(
            f"secret {self}: the Kubernetes API refused to {doing} it "
            f"({response.status_code}{' ' + reason if reason else ''})"
        )

    def read(self) -> str | None:
        """The accounts kept (what ``realm_step.accounts_json`` wrote); None before the first."""
        response = self._call("GET")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._refused(response, "read")
        value = (response.json().get("data") or {}).get(KEY)
        return base64.b64decode(value).decode("utf-8") if value else None

    def write(self, text: str) -> None:
        """Keep ``text`` in the Secret, made if it is not there."""
        data = {KEY: base64.b64encode(text.encode("utf-8")).decode("ascii")}
        response = self._call("PATCH", {"data": data})
        if response.status_code == 404:
            body = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": self.name,
                    "labels": {"app.kubernetes.io/managed-by": "karmayogi"},
                },
                "type": "Opaque",
                "data": data,
            }
            response = self._call("POST", body, create=True)
        if response.status_code not in (200, 201):
            raise self._refused(response, "write")

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"
