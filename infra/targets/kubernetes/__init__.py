"""The kubernetes target: Helm charts (charts/) on a state's or the nation's cluster.

Secrets live in Kubernetes Secrets, made by the operator or an external-secrets tool; the
rendered files name each as ``secret:<namespace>/<secret>#<key>``.
"""

from __future__ import annotations

from infra.targets.production import ProductionTarget


class KubernetesTarget(ProductionTarget):
    def __init__(self, env: dict[str, str]) -> None:
        super().__init__("kubernetes", "/data", "helm upgrade --install", env)

    def reference_of(self, code: str, name: str) -> str:
        return f"secret:karmayogi-{code}/karmayogi-portal#{name.replace('_', '-')}"
