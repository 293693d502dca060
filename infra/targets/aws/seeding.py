"""The stacks' step that gives their Secrets Manager entries their first values.

A stack makes its secrets (names, key, tags, rotation) but never their values, so that none
is in Pulumi's state. Between the secrets and the ``ExternalSecret`` that brings them into a
namespace, a dynamic resource writes them during ``pulumi up`` (never in a preview): a value
already there is kept, a missing one is made. Its state holds the names it wrote, never a
value. ``SecretValues`` runs :meth:`AwsSecretStore.seed` for a tenant; ``RandomValues`` gives
the platform's secrets (Keycloak's bootstrap client secret) a random value each.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi import dynamic


class _Seeding(dynamic.ResourceProvider):
    def _seed(self, props: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        return dynamic.CreateResult(str(props.get("code") or props["name"]), self._seed(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(self._seed(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing: the secrets go with the stack's Secret resources."""


class _TenantSeeding(_Seeding):
    def _seed(self, props: dict[str, Any]) -> dict[str, Any]:
        from infra.targets.aws.secrets import AwsSecretStore

        store = AwsSecretStore(environment=str(props["environment"]))
        written = store.seed(str(props["code"]))
        return {**props, "written": written}


class _RandomSeeding(_Seeding):
    def _seed(self, props: dict[str, Any]) -> dict[str, Any]:
        from infra.home import new_password
        from infra.targets.aws.secrets import AwsSecretStore

        store = AwsSecretStore()
        written = [i for i in props["secret_ids"] if store.read(str(i)) is None]
        for secret_id in written:
            store.write(str(secret_id), new_password(32))
        return {**props, "written": written}


class SecretValues(dynamic.Resource):
    """Every secret of tenant ``code`` has a value once this exists (names written: ``written``)."""

    written: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        *,
        code: str,
        environment: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "code": code,
            "environment": environment,
            "written": None,
        }
        super().__init__(_TenantSeeding(), name, props, opts)


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
        super().__init__(_RandomSeeding(), name, props, opts)
