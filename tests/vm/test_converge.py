"""A real converge: the hub and Bihar as one deployment onto a Debian 12 host booted on this
machine (tests/rig/vm.py), offline but for the rig's apt proxy and wheelhouse, with
`karmayogi deploy --target vm`. Converged once for the module, then checked many ways."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from ruamel.yaml import YAML

from infra.home import KitHome
from infra.targets.vm import VAULT_FILE, database_name, read_vault
from tests.rig.apt_sources import machine_sources
from tests.rig.ca import CertificateAuthority
from tests.rig.vm import VmHost, booted_vm
from tests.vm.conftest import LOGIN_DOMAIN, PLAYBOOKS, ansible_env, one_deployment

KARMAYOGI = Path(sys.executable).with_name("karmayogi")


@dataclass(frozen=True)
class Converged:
    host: VmHost
    out: Path
    tenants: Path
    password_file: Path
    codes: tuple[str, ...]
    domains: dict[str, str]
    ca: CertificateAuthority
    first_run: str

    def deploy(self, log: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return deploy(self.out, self.tenants, self.password_file, self.codes, log, *extra)

    def get(self, name: str, path: str) -> httpx.Response:
        """``https://<name><path>`` from this machine, at the host's address, trusting the CA."""
        with httpx.Client(verify=self.ca.ssl_context(), timeout=30) as client:
            return client.get(
                f"https://{self.host.address}{path}",
                headers={"Host": name},
                extensions={"sni_hostname": name},
            )


def deploy(
    out: Path, tenants: Path, password_file: Path, codes: tuple[str, ...], log: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    command = [str(KARMAYOGI), "deploy", *codes, "--target", "vm", "--out", str(out)]
    command += ["--tenants", str(tenants), "--vault-password-file", str(password_file), *extra]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=3000)
    log.write_text(done.stdout + done.stderr, encoding="utf-8")
    return done


def failure(done: subprocess.CompletedProcess[str]) -> str:
    """What went wrong in a play: its error lines, then its end."""
    output = done.stdout + done.stderr
    said = [line for line in output.splitlines() if "ERROR" in line or "fatal:" in line]
    return "\n".join(said[-20:]) + "\n...\n" + output[-3000:]


def _edit_yaml(path: Path, changes: dict[str, object]) -> None:
    yaml = YAML(typ="rt")
    data = yaml.load(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        data[key] = value
    with path.open("w", encoding="utf-8") as handle:
        yaml.dump(data, handle)


@pytest.fixture(scope="module")
def converge_host(
    tmp_path_factory: pytest.TempPathFactory, vm_wheelhouse: Path
) -> Iterator[VmHost]:
    """A host of the converge's own: the play changes it (apt sources, nginx, firewall), and
    the rig's tests check the session's host as the rig made it."""
    with booted_vm(
        tmp_path_factory.mktemp("converge-host"),
        cache=KitHome.from_env().cache,
        wheelhouse=vm_wheelhouse,
    ) as host:
        yield host


@pytest.fixture(scope="module")
def converged(
    converge_host: VmHost,
    rig_ca: CertificateAuthority,
    kit_wheel: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch_module: pytest.MonkeyPatch,
) -> Converged:
    root = tmp_path_factory.mktemp("converge")
    codes = one_deployment(root / "tenants", "vm")
    domains = {}
    for code in codes:
        text = (root / "tenants" / f"{code}.yaml").read_text(encoding="utf-8")
        domains[code] = re.search(r"\n  domain: (\S+)", text).group(1)  # type: ignore[union-attr]
    password_file = root / "vault-password"
    password_file.write_text("converge-test-vault-password\n", encoding="utf-8")
    out = root / "out"
    monkeypatch_module.setenv("KARMAYOGI_KIT_WHEEL", str(kit_wheel))
    rendered = subprocess.run(
        [
            str(KARMAYOGI),
            "render",
            *codes,
            "--target",
            "vm",
            "--out",
            str(out),
            "--tenants",
            str(root / "tenants"),
            "--vault-password-file",
            str(password_file),
            "--host",
            converge_host.address,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    # What an operator edits once: how to reach the host, its sources, its certificates.
    hosts = out / "inventory" / "hosts.yml"
    host_vars = converge_host.ansible_inventory_vars()
    hosts.write_text(
        json.dumps(
            {
                "karmayogi_app": {"hosts": {converge_host.address: host_vars}},
                "karmayogi_database": {"hosts": {converge_host.address: host_vars}},
            }
        ),
        encoding="utf-8",
    )
    names = [*domains.values(), LOGIN_DOMAIN]
    certificates = {}
    for name in names:
        cert, key = rig_ca.issue([name])
        certificates[name] = {"certificate": str(cert), "key": str(key)}
    sources = [
        {
            "name": f"karmayogi-{index}",
            "uris": source.through(converge_host.apt_proxy_url).uri,
            "suites": " ".join(source.suites),
            "components": " ".join(source.components),
        }
        for index, source in enumerate(machine_sources())
    ]
    _edit_yaml(
        out / "inventory" / "group_vars" / "all" / "site.yml",
        {
            "karmayogi_apt_sources": sources,
            "karmayogi_wheelhouse_url": converge_host.wheelhouse_url,
            "nginx_certificates": certificates,
        },
    )
    # The data centre's DNS: every public name is the host itself.
    converge_host.run(f"echo '127.0.0.1 {' '.join(names)}' >> /etc/hosts")
    done = deploy(out, root / "tenants", password_file, codes, root / "deploy-1.log")
    assert done.returncode == 0, failure(done)
    output = done.stdout + done.stderr
    return Converged(
        converge_host, out, root / "tenants", password_file, codes, domains, rig_ca, output
    )


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_nginx_serves_both_portals_over_https_on_their_names(converged: Converged) -> None:
    for code, domain in converged.domains.items():
        response = converged.get(domain, "/healthz")
        assert response.status_code == 200, response.text
        assert response.json()["tenant"] == code
        assert "max-age=31536000" in response.headers["strict-transport-security"]
        assert response.headers["x-content-type-options"] == "nosniff"


def test_http_goes_to_https(converged: Converged) -> None:
    domain = next(iter(converged.domains.values()))
    response = httpx.get(f"http://{converged.host.address}/courses/", headers={"Host": domain})
    assert response.status_code == 308
    assert response.headers["location"] == f"https://{domain}/courses/"


def test_keycloak_serves_both_realms_and_hides_the_master_realm(converged: Converged) -> None:
    for code in converged.codes:
        response = converged.get(LOGIN_DOMAIN, f"/realms/{code}/.well-known/openid-configuration")
        assert response.status_code == 200, response.text
        assert response.json()["issuer"] == f"https://{LOGIN_DOMAIN}/realms/{code}"
    for path in ("/admin/master/console/", "/realms/master/.well-known/openid-configuration"):
        assert converged.get(LOGIN_DOMAIN, path).status_code == 404
    # Keycloak's health answers on the host's management port only.
    health = converged.host.run("curl -fsS http://127.0.0.1:9000/health/ready").stdout
    assert '"UP"' in health


def test_the_syncer_and_delivery_run_on_timers(converged: Converged) -> None:
    timers = converged.host.run("systemctl list-timers --all --no-legend").stdout
    for code in converged.codes:
        assert f"karmayogi-sync@{code}.timer" in timers
        assert f"karmayogi-xapi@{code}.timer" in timers
    assert "karmayogi-backup.timer" in timers


def test_no_secret_reaches_the_play_output(converged: Converged) -> None:
    values = read_vault(converged.out / VAULT_FILE, converged.password_file).values()
    assert not [v for v in values if "{{" not in v and v in converged.first_run]


def test_a_second_run_changes_nothing(converged: Converged, tmp_path: Path) -> None:
    done = converged.deploy(tmp_path / "deploy-2.log")
    output = done.stdout + done.stderr
    assert done.returncode == 0, failure(done)
    recap = re.findall(r"changed=(\d+)", output)
    assert recap and set(recap) == {"0"}, output[-6000:]


def test_a_release_that_fails_its_health_check_leaves_the_previous_one_serving(
    converged: Converged, vm_wheelhouse: Path, tmp_path: Path
) -> None:
    serving = converged.host.run("readlink /opt/karmayogi/current").stdout.strip()
    # A release without the portal in it: it installs, then cannot start.
    broken = sorted(vm_wheelhouse.glob("idna-*.whl"))[-1]
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i",
            str(converged.out / "inventory"),
            "--vault-password-file",
            str(converged.password_file),
            "-e",
            "portal_release_id=broken",
            "-e",
            f"portal_kit_wheel={broken}",
            str(PLAYBOOKS / "site.yml"),
        ],
        capture_output=True,
        text=True,
        check=False,
        env=ansible_env(tmp=str(tmp_path)),
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "release broken failed its health check" in output, output[-4000:]
    assert f"{serving.rsplit('/', 1)[-1]} still serves" in output
    assert converged.host.run("readlink /opt/karmayogi/current").stdout.strip() == serving
    for code, domain in converged.domains.items():
        assert converged.get(domain, "/healthz").json()["tenant"] == code
    # The failed tasks' output names the tenants, never their secrets.
    values = read_vault(converged.out / VAULT_FILE, converged.password_file).values()
    assert not [v for v in values if "{{" not in v and v in output]


def test_the_backup_timer_backs_up_the_deployment_and_restore_brings_a_lost_database_back(
    converged: Converged,
) -> None:
    host = converged.host
    kit = "cd /tmp && sudo -u karmayogi /opt/karmayogi/current/bin/karmayogi"
    state = next(code for code in converged.codes if code.startswith("bihar"))
    database = database_name(state)
    pages = f"psql -d {database} -tAc 'SELECT title FROM wagtailcore_page ORDER BY path'"
    as_postgres = "cd /tmp && sudo -u postgres"
    before = host.run(f"{as_postgres} {pages}").stdout
    assert before.strip()

    host.run("systemctl start karmayogi-backup.service")  # what the timer runs, to its end
    listed = json.loads(host.run(f"{kit} backups --to /var/backups/karmayogi --json").stdout)
    [backup] = listed["backups"]
    assert backup["complete"] and sorted(backup["tenants"]) == sorted(converged.codes)

    # Bihar's database lost while everything that uses the databases is stopped.
    portals = " ".join(f"karmayogi-portal@{code}" for code in converged.codes)
    timers = "'karmayogi-sync@*.timer' 'karmayogi-xapi@*.timer'"
    host.run(f"systemctl stop {timers} {portals} keycloak")
    try:
        host.run(f"{as_postgres} dropdb {database}")
        restore = f"restore --from /var/backups/karmayogi/{backup['name']}"
        host.run(f"{kit} {restore} --source /etc/karmayogi/backup-source.json --yes")
    finally:
        host.run(f"systemctl start keycloak {portals} {timers}")
    assert host.run(f"{as_postgres} {pages}").stdout == before
    for code in converged.codes:  # serving again once started
        host.run(f"systemctl is-active karmayogi-portal@{code}")
