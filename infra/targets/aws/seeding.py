"""The tenant stack's step that gives its Secrets Manager entries their first values.

The stack makes the secrets (names, key, tags, rotation) but never their values, so that none
is in Pulumi's state. Between the secrets and the ``ExternalSecret`` that brings them into the
portal's namespace, this dynamic resource runs :meth:`AwsSecretStore.seed` during ``pulumi
up`` (never in a preview): a value already there is kept, a missing one is made. Its state holds
the names it wrote, never a value.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi import dynamic


class _Provider(dynamic.ResourceProvider):
    def _seed(self, props: dict[str, Any]) -> dict[str, Any]:
        from infra.targets.aws.secrets import AwsSecretStore

        store = AwsSecretStore(environment=str(props["environment"]))
        written = store.seed(
            str(props["code"]), str(props["endpoint"]), str(props["master_secret_arn"])
        )
        return {**props, "written": written}

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        return dynamic.CreateResult(f"{props['code']}-secret-values", self._seed(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(self._seed(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing: the secrets go with the stack's Secret resources."""


class SecretValues(dynamic.Resource):
    """Every secret of tenant ``code`` has a value once this exists (names written: ``written``)."""

    written: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        *,
        code: str,
        environment: str,
        endpoint: pulumi.Input[str],
        master_secret_arn: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "code": code,
            "environment": environment,
            "endpoint": endpoint,
            "master_secret_arn": master_secret_arn,
            "written": None,
        }
        super().__init__(_Provider(), name, props, opts)
