"""The vm target: a state data centre's VMs, converged by Ansible (playbooks/).

Secrets live in Ansible Vault: the rendered files name each as a vault variable.
"""

from __future__ import annotations

from infra.targets.production import KeycloakSite, ProductionTarget


class VmTarget(ProductionTarget):
    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(
            "vm",
            "/var/lib/karmayogi",
            "ansible-playbook playbooks/site.yml",
            env,
            KeycloakSite(database_host="localhost"),
        )

    def reference_of(self, code: str, name: str) -> str:
        return f"ansible-vault:vault_karmayogi_{code.replace('-', '_')}_{name}"
