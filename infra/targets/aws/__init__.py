"""The aws target: a Pulumi stack per tenant on EKS, secrets in AWS Secrets Manager.

The rendered files name each secret as ``aws-secretsmanager:karmayogi/<code>/<name>``.
"""

from __future__ import annotations

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
