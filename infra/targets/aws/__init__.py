"""The aws target: a Pulumi stack per tenant on EKS, secrets in AWS Secrets Manager.

The rendered files name each secret as ``aws-secretsmanager:karmayogi/<code>/<name>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from infra.errors import KitError
from infra.spec import TenantSpec
from infra.targets.base import Progress
from infra.targets.production import KeycloakSite, ProductionTarget


class AwsTarget(ProductionTarget):
    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(
            "aws",
            "/data",
            "the Pulumi Automation API",
            env,
            KeycloakSite(
                database_host="karmayogi-keycloak.rds.internal",
                proxy_addresses=("10.0.0.0/8",),
                http_host="0.0.0.0",
            ),
        )

    def reference_of(self, code: str, name: str) -> str:
        return f"aws-secretsmanager:karmayogi/{code}/{name.replace('_', '-')}"

    def deploy(self, specs: Sequence[TenantSpec], codes: Sequence[str], progress: Progress) -> Any:
        """Update (or, with KARMAYOGI_PULUMI_PREVIEW, preview) each tenant's Pulumi stack."""
        from infra.targets.aws.deploy import run

        return {code: run(specs, _spec(specs, code), self.env, progress) for code in codes}

    def destroy(
        self, specs: Sequence[TenantSpec], codes: Sequence[str], progress: Progress
    ) -> None:
        """Destroy each tenant's Pulumi stack (the database's deletion protection stays on:
        AWS refuses until an operator turns it off, docs/aws.md)."""
        from infra.targets.aws.deploy import run

        for code in codes:
            run(specs, _spec(specs, code), self.env, progress, destroy=True)


def _spec(specs: Sequence[TenantSpec], code: str) -> TenantSpec:
    found = next((s for s in specs if s.code == code), None)
    if found is None:
        raise KitError(f"no tenant spec with code {code!r}")
    return found
