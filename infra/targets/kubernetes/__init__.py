"""The kubernetes target: Helm charts (charts/) on a state's or the nation's cluster.

Secrets live in Kubernetes Secrets, made by the operator or an external-secrets tool; the
rendered files name each as ``secret:<namespace>/<secret>#<key>``.
"""

from __future__ import annotations

from infra.targets.production import KeycloakSite, ProductionTarget


class KubernetesTarget(ProductionTarget):
    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(
            "kubernetes",
            "/data",
            "helm upgrade --install",
            env,
            KeycloakSite(
                database_host="karmayogi-postgresql",
                proxy_addresses=("10.0.0.0/8",),
                http_host="0.0.0.0",
            ),
        )

    def reference_of(self, code: str, name: str) -> str:
        return f"secret:karmayogi-{code}/karmayogi-portal#{name.replace('_', '-')}"
