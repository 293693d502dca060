"""A thin, counted client of Keycloak's admin REST API.

Token handling (client-credentials grant, refresh on expiry or 401) comes from
python-keycloak's ``KeycloakOpenIDConnection``. The reconciler talks to the REST paths
directly rather than through ``KeycloakAdmin``'s helpers: it must look before it writes,
read masked secrets as such, and count every write (a second apply must make none), and
several helpers detect "already exists" by matching error text or raise ``TypeError`` on a
400 (DESIGN §9).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from keycloak import KeycloakOpenIDConnection
from keycloak.exceptions import KeycloakError

from identity.errors import IdentityError


@dataclass(frozen=True)
class Credentials:
    """A confidential client in the master realm with the ``admin`` role."""

    server_url: str
    client_id: str
    client_secret: str


class AdminAPI:
    """Admin REST calls that raise :class:`IdentityError` naming what failed."""

    def __init__(self, credentials: Credentials, timeout: int = 30) -> None:
        self.server_url = credentials.server_url.rstrip("/")
        self.requests: Counter[str] = Counter()
        self._connection = KeycloakOpenIDConnection(
            server_url=self.server_url,
            realm_name="master",
            user_realm_name="master",
            client_id=credentials.client_id,
            client_secret_key=credentials.client_secret,
            grant_type="client_credentials",
            timeout=timeout,
        )
        self.renew_token()

    def renew_token(self) -> None:
        """Fetch a fresh token (after creating a realm, whose roles it must see)."""
        try:
            self._connection.get_token()
        except KeycloakError as exc:
            raise IdentityError(
                f"cannot sign in to Keycloak at {self.server_url} as {self._connection.client_id}"
                f" (HTTP {exc.response_code})"
            ) from None
        except Exception as exc:  # connection refused, DNS, TLS: one line for the operator
            raise IdentityError(f"cannot reach Keycloak at {self.server_url}: {exc}") from None

    @property
    def writes(self) -> int:
        return sum(n for method, n in self.requests.items() if method != "GET")

    def _call(self, method: str, path: str, what: str, body: Any = None, **params: str) -> Any:
        self.requests[method] += 1
        url = f"/admin/realms{path}"
        conn = self._connection
        try:
            if method == "GET":
                response = conn.raw_get(url, **params)
            elif method == "POST":
                response = conn.raw_post(url, data=json.dumps(body), **params)
            elif method == "PUT":
                response = conn.raw_put(url, data=json.dumps(body), **params)
            else:
                data = json.dumps(body) if body is not None else None
                response = conn.raw_delete(url, data=data, **params)
        except KeycloakError as exc:
            raise IdentityError(
                f"{what}: cannot reach Keycloak at {self.server_url}: {exc}"
            ) from None
        if response.status_code == 404 and method == "GET":
            return None
        if response.status_code >= 400:
            reason = _reason(response.text)
            raise IdentityError(
                f"{what}: Keycloak refused {method} (HTTP {response.status_code}{reason})"
            )
        if method == "POST" and response.status_code == 201:
            location = response.headers.get("Location", "")
            return location.rsplit("/", 1)[-1] if location else None
        if not response.content:
            return None
        return response.json()

    def get(self, path: str, what: str, **params: str) -> Any:
        """The JSON at ``path`` (under ``/admin/realms``), or None on 404."""
        return self._call("GET", path, what, **params)

    def post(self, path: str, body: Any, what: str) -> str | None:
        """POST ``body``; returns the id from the Location header when Keycloak sends one."""
        result = self._call("POST", path, what, body)
        return result if isinstance(result, str) else None

    def trigger(self, path: str, what: str, **params: str) -> Any:
        """POST an action without a body (a sync, say) and return Keycloak's JSON answer."""
        return self._call("POST", path, what, None, **params)

    def export_realm(self, realm: str) -> dict[str, Any]:
        """The realm's configuration with clients, groups and roles (no users, secrets masked)."""
        rep = self._call(
            "POST",
            f"/{q(realm)}/partial-export",
            f"export realm {realm}",
            None,
            exportClients="true",
            exportGroupsAndRoles="true",
        )
        return dict(rep)

    def put(self, path: str, body: Any, what: str) -> None:
        self._call("PUT", path, what, body)

    def delete(self, path: str, what: str, body: Any = None) -> None:
        """DELETE ``path``; a few endpoints (role mappings) take the objects to remove."""
        self._call("DELETE", path, what, body)


def q(value: str) -> str:
    """Quote one path segment (flow aliases hold spaces)."""
    return quote(value, safe="")


def _reason(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return ""
    if isinstance(data, dict):
        message = data.get("errorMessage") or data.get("error_description") or data.get("error")
        if message:
            return f": {str(message)[:200]}"
    return ""
