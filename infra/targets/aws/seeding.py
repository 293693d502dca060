"""The stacks' step that gives their Secrets Manager entries their first values.

A stack makes its secrets (names, key, tags) but never their values, so that none is in
Pulumi's state. Between the secrets and the ``ExternalSecret`` that brings them into a
namespace, ``RandomValues``, a dynamic resource, gives each secret without a value a random
one during ``pulumi up`` (never in a preview); a value already there (one the hub sent) is kept.
Its state holds the ids it wrote, never a value. The tenant stack seeds the Django key and the
client secrets with it, the platform Keycloak's bootstrap client secret and database password.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi import dynamic


class _Provider(dynamic.ResourceProvider):
    def _seed(self, props: dict[str, Any]) -> dict[str, Any]:
        from infra.home import new_password
        from infra.targets.aws.secrets import AwsSecretStore

        store = AwsSecretStore()
        written = [i for i in props["secret_ids"] if store.read(str(i)) is None]
        for secret_id in written:
            store.write(str(secret_id), new_password(32))
        return {**props, "written": written}

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        return dynamic.CreateResult(str(props["name"]), self._seed(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(self._seed(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing: the secrets go with the stack's Secret resources."""


class RandomValues(dynamic.Resource):
    """Each of ``secret_ids`` (secrets of the stack) has a value once this exists, a random one
    if it had none (ids written: ``written``)."""

    written: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        *,
        secret_ids: list[pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {"name": name, "secret_ids": secret_ids, "written": None}
        super().__init__(_Provider(), name, props, opts)
