"""Backup and restore on the local target (issue 14, item 4): a portal's SQLite database and
media, and the real Keycloak's H2 store, which the backup copies with Keycloak stopped and
started again.

The portal is its parts (a SQLite file and a media folder under the session's kit home), so
that no portal has to be started; Keycloak is the session's own, stopped and started for real.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from identity.admin import AdminAPI, Credentials
from infra.backup.format import MANIFEST
from infra.cli import app
from infra.home import KitHome
from infra.targets.local.keycloak import LocalKeycloak

CERTIFICATE = b"%PDF-1.7 a learner's certificate\n"


def admin_api(kc: LocalKeycloak) -> AdminAPI:
    account = kc.service_account()
    return AdminAPI(Credentials(account.server_url, account.client_id, account.client_secret))


def usernames(kc: LocalKeycloak, realm: str) -> list[str]:
    users = admin_api(kc).get(f"/{realm}/users", "users") or []
    return sorted(u["username"] for u in users)


@dataclass
class LocalTenant:
    code: str
    folder: Path

    @property
    def database(self) -> Path:
        return self.folder / "portal.sqlite3"

    @property
    def certificate(self) -> Path:
        return self.folder / "media" / "certificates" / "cert-1.pdf"

    def courses(self) -> list[str]:
        with sqlite3.connect(self.database) as db:
            return [row[0] for row in db.execute("SELECT name FROM course ORDER BY name")]


@pytest.fixture
def tenant(keycloak: LocalKeycloak, kit_home: KitHome) -> Iterator[LocalTenant]:
    """A realm with a learner in the session's Keycloak, and a portal's files in its home."""
    code = f"bk-{uuid.uuid4().hex[:8]}"
    folder = kit_home.root / "portals" / code
    (folder / "media" / "certificates").mkdir(parents=True)
    found = LocalTenant(code, folder)
    found.certificate.write_bytes(CERTIFICATE)
    with sqlite3.connect(found.database) as db:
        db.execute("CREATE TABLE course (name text PRIMARY KEY)")
        db.execute("INSERT INTO course VALUES ('Noting and drafting'), ('RTI basics')")
    api = admin_api(keycloak)
    api.post("", {"realm": code, "enabled": True}, "realm")
    api.post(f"/{code}/users", {"username": "asha.learner", "enabled": True}, "user")
    try:
        yield found
    finally:
        if keycloak.running_pid() is None:
            keycloak.start()
        admin_api(keycloak).delete(f"/{code}", "realm")
        shutil.rmtree(folder, ignore_errors=True)


def cli(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=env | {"COLUMNS": "200"})


@pytest.mark.keycloak
def test_local_backup_and_restore_bring_back_a_keycloak_user_and_portal_data(
    tenant: LocalTenant, keycloak: LocalKeycloak, kit_env: dict[str, str], tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    result = cli(kit_env, "backup", "--to", str(backups))
    assert result.exit_code == 0, result.output + result.stderr
    assert "stopping it for a consistent copy" in result.stderr
    assert keycloak.healthy()  # started again after the copy
    [backup] = [p for p in backups.iterdir() if p.is_dir()]
    manifest = json.loads((backup / MANIFEST).read_text())
    assert manifest["source"] == "local" and tenant.code in manifest["tenants"]
    names = {p["name"] for p in manifest["parts"]}
    assert {f"portal-{tenant.code}.sqlite3", f"media-{tenant.code}.tar.gz"} <= names
    assert "keycloak-h2.tar.gz" in names

    # Disaster: the learner deleted in Keycloak, a course and the certificate gone.
    api = admin_api(keycloak)
    [user] = api.get(f"/{tenant.code}/users", "users", username="asha.learner")
    api.delete(f"/{tenant.code}/users/{user['id']}", "user")
    with sqlite3.connect(tenant.database) as db:
        db.execute("DELETE FROM course WHERE name = 'RTI basics'")
    tenant.certificate.unlink()

    # Refused while Keycloak runs: one line, nothing touched.
    result = cli(kit_env, "restore", "--from", str(backup), "--yes")
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert "Keycloak running" in line and "karmayogi down" in line
    assert tenant.courses() == ["Noting and drafting"]

    keycloak.stop()
    result = cli(kit_env, "restore", "--from", str(backup), "--yes")
    assert result.exit_code == 0, result.output + result.stderr
    keycloak.start()
    assert usernames(keycloak, tenant.code) == ["asha.learner"]
    assert tenant.courses() == ["Noting and drafting", "RTI basics"]
    assert tenant.certificate.read_bytes() == CERTIFICATE
