"""The aws target: a Pulumi stack per tenant on EKS, secrets in AWS Secrets Manager.

The rendered files name each secret as ``aws-secretsmanager:karmayogi/<code>/<name>``.
"""

from __future__ import annotations

from infra.targets.production import ProductionTarget


class AwsTarget(ProductionTarget):
    def __init__(self, env: dict[str, str]) -> None:
        super().__init__("aws", "/data", "the Pulumi Automation API", env)

    def reference_of(self, code: str, name: str) -> str:
        return f"aws-secretsmanager:karmayogi/{code}/{name.replace('_', '-')}"
