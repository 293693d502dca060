"""Keycloak's file-based vault: one file per realm and secret, read by Keycloak on use.

A realm setting that names ``${vault.parichay-client}`` makes Keycloak read the file
``<realm>_parichay-client`` in its ``--vault-dir``; an underscore inside the realm or the
secret's name is written twice, so ``a_b`` + ``c`` and ``a`` + ``b_c`` cannot collide
(https://www.keycloak.org/server/vault). The admin API then only ever carries the
expression, never the secret.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class Vault(Protocol):
    """Where the reconciler puts the secrets a realm reads through ``${vault.<name>}``."""

    def read(self, realm: str, name: str) -> str | None:
        """The secret's value as the vault holds it, or None when it holds none."""
        ...

    def write(self, realm: str, name: str, value: str) -> None: ...

    def remove_realm(self, realm: str) -> list[str]:
        """Forget every secret of ``realm``; returns their names."""
        ...


def vault_file_name(realm: str, name: str) -> str:
    """The file Keycloak's file vault reads for ``${vault.<name>}`` in ``realm``."""
    return f"{realm.replace('_', '__')}_{name.replace('_', '__')}"


@dataclass(frozen=True)
class FileVault:
    """The folder Keycloak was started with as ``--vault-dir``; files 0600 in a 0700 folder."""

    folder: Path

    def path(self, realm: str, name: str) -> Path:
        return self.folder / vault_file_name(realm, name)

    def read(self, realm: str, name: str) -> str | None:
        try:
            return self.path(realm, name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def write(self, realm: str, name: str, value: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.folder, 0o700)
        target = self.path(realm, name)
        temporary = target.with_name(f".{target.name}.new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            # No newline: Keycloak takes the file's bytes as the secret.
            handle.write(value)
        os.replace(temporary, target)

    def remove_realm(self, realm: str) -> list[str]:
        prefix = f"{realm.replace('_', '__')}_"
        removed = []
        if self.folder.is_dir():
            for path in sorted(self.folder.iterdir()):
                rest = path.name[len(prefix) :]
                # ``a_b`` must not take ``a__b_x`` (realm a_b) for realm ``a``'s secret.
                if path.name.startswith(prefix) and not rest.startswith("_"):
                    path.unlink()
                    removed.append(rest.replace("__", "_"))
        return removed
