"""A real converge: the hub and Bihar as one deployment onto a Debian 12 host booted on this
machine (tests/rig/vm.py), offline but for the rig's apt proxy and wheelhouse, with
`karmayogi deploy --target vm`. Converged once for the module, then checked many ways."""

from __future__ import annotations

import html
import json
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright
from ruamel.yaml import YAML

from infra.home import KitHome
from infra.targets.vm import VAULT_FILE, database_name, read_vault
from tests.rig.apt_sources import machine_sources
from tests.rig.ca import CertificateAuthority
from tests.rig.chromium import launch_options, sign_in_at_keycloak
from tests.rig.moto import CREDENTIALS, MotoServer, moto_server
from tests.rig.names import NameMap
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
    s3: MotoServer  # where the backup timer sends backups
    first_run: str

    def deploy(self, log: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return deploy(self.out, self.tenants, self.password_file, self.codes, log, *extra)

    def get(self, name: str, path: str, **headers: str) -> httpx.Response:
        """``https://<name><path>`` from this machine, at the host's address, trusting the CA."""
        with httpx.Client(verify=self.ca.ssl_context(), timeout=30) as client:
            return client.get(
                f"https://{self.host.address}{path}",
                headers={"Host": name, **headers},
                extensions={"sni_hostname": name},
            )

    @property
    def hub(self) -> str:
        return next(code for code in self.codes if not code.startswith("bihar"))

    @property
    def state(self) -> str:
        return next(code for code in self.codes if code.startswith("bihar"))


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
def host_s3(converge_host: VmHost) -> Iterator[MotoServer]:
    """moto's S3 server where the host reaches it: this machine's side of the host's link."""
    with moto_server(converge_host.host_address) as server:
        yield server.with_bucket("karmayogi-backups")


@pytest.fixture(scope="module")
def converged(
    converge_host: VmHost,
    host_s3: MotoServer,
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
            # The data centre's own CA signed the certificates: the host must trust it, for
            # its portals call each other and Keycloak by their public names.
            "karmayogi_trusted_ca_certificates": [str(rig_ca.bundle_path)],
            "backup_destination": f"s3://{host_s3.bucket}/national",
            "backup_environment": {**CREDENTIALS, "AWS_ENDPOINT_URL": host_s3.endpoint},
        },
    )
    # The data centre's DNS: every public name is the host itself.
    converge_host.run(f"echo '127.0.0.1 {' '.join(names)}' >> /etc/hosts")
    done = deploy(out, root / "tenants", password_file, codes, root / "deploy-1.log")
    assert done.returncode == 0, failure(done)
    output = done.stdout + done.stderr
    return Converged(
        converge_host, out, root / "tenants", password_file, codes, domains, rig_ca, host_s3, output
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


CREATE_OFFICER = """
import json, sys
from identity.admin import AdminAPI, Credentials
kept = json.load(open("/etc/karmayogi/keycloak-accounts.json"))
api = AdminAPI(Credentials("http://127.0.0.1:8080", kept["reconciler_client_id"],
                           kept["reconciler_client_secret"]))
realm, password = sys.argv[1], sys.stdin.read().strip()
api.post(f"/{realm}/users", {"username": "asha.officer", "enabled": True,
         "email": "asha.officer@example.org", "emailVerified": True, "firstName": "Asha",
         "lastName": "Kumari", "credentials": [{"type": "password", "value": password,
         "temporary": False}]}, "create an officer")
"""


def test_an_officer_signs_in_through_the_hosts_keycloak_in_chromium(
    converged: Converged, rig_chromium_home: Path, tmp_path: Path
) -> None:
    state, domain = converged.state, converged.domains[converged.state]
    password = secrets.token_urlsafe(16)
    script = f"cd /tmp && echo {password} | /opt/karmayogi/current/bin/python -c '{CREATE_OFFICER}'"
    converged.host.run(f"{script} {state}")
    # Chromium resolves both public names to the host, and trusts the CA that signed them.
    address = converged.host.address
    rules = f"--host-resolver-rules=MAP {domain} {address},MAP {LOGIN_DOMAIN} {address}"
    options = launch_options(NameMap(tmp_path / "names"), rig_chromium_home, args=(rules,))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**options)
        try:
            context = browser.new_context(locale="en-GB")
            context.set_default_timeout(60_000)
            page = context.new_page()
            page.goto(f"https://{domain}/")
            page.locator('a[href="/auth/authenticate/"]').click()
            page.locator("#kc-form-login").wait_for()
            assert page.url.startswith(f"https://{LOGIN_DOMAIN}/realms/{state}/")
            # The portal redeems the code at Keycloak's public name over TLS (the back
            # channel), which needs the host to trust the data centre's CA.
            signed_in = sign_in_at_keycloak(page, "asha.officer", password, f"https://{domain}")
            assert "Asha" in signed_in
        finally:
            browser.close()


def test_the_syncer_timer_brings_the_hubs_courses_to_the_state(converged: Converged) -> None:
    seeded = converged.host.run(f"karmayogi-manage {converged.hub} seed_courses")
    published = re.findall(r'Published: "([^"]+)"', seeded.stdout + seeded.stderr)
    titles = [title for title in published if title.isascii()]  # English, not the Hindi
    assert titles, seeded.stdout[-2000:]
    domain = converged.domains[converged.state]
    # Nobody starts the syncer here: its timer runs a round a minute (portal_sync_interval).
    catalogue = ""
    for _ in range(60):
        catalogue = converged.get(domain, "/courses/", **{"Accept-Language": "en"}).text
        if html.escape(titles[0]) in catalogue:
            break
        time.sleep(5)
    assert html.escape(titles[0]) in catalogue, f"{titles[0]!r} never reached {domain}"
    unit = f"karmayogi-sync@{converged.state}.service"
    result = converged.host.run(f"systemctl show {unit} -p Result --value").stdout.strip()
    assert result == "success"


def _each_syncer_last_succeeded(converged: Converged) -> None:
    """Wait (up to three rounds) until every portal's last sync round succeeded: one round can
    fail while the tests before change the host (in one CI run the hub's round failed while the
    test before seeded its courses). One that keeps failing fails the test with its journal."""
    units = [f"karmayogi-sync@{code}.service" for code in converged.codes]
    failing: list[str] = []
    for _ in range(36):
        failing = [
            unit
            for unit in units
            if converged.host.run(f"systemctl show {unit} -p Result --value").stdout.strip()
            != "success"
        ]
        if not failing:
            return
        time.sleep(5)
    journals = [converged.host.run(f"journalctl -u {u} -n 60 --no-pager").stdout for u in failing]
    pytest.fail(f"sync rounds keep failing: {', '.join(failing)}\n" + "\n".join(journals))


def test_status_and_logs_read_each_portal_and_timer_on_the_host(converged: Converged) -> None:
    def kit(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(KARMAYOGI), *args, "--tenants", str(converged.tenants)]
        command += ["--out", str(converged.out), "--vault-password-file"]
        command += [str(converged.password_file)]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    def status(*extra: str) -> subprocess.CompletedProcess[str]:
        return kit("status", *extra)

    # The state's journal: its syncer's rounds are in it, under the host's name.
    logs = kit("logs", converged.state, "-n", "400")
    assert logs.returncode == 0, logs.stdout + logs.stderr
    assert f"== {converged.host.address} ==" in logs.stdout
    assert f"{converged.hub}: " in logs.stdout and " applied, " in logs.stdout
    refused = kit("logs", "../etc")
    assert refused.returncode == 1
    assert "'../etc' is not a tenant code" in refused.stdout + refused.stderr

    _each_syncer_last_succeeded(converged)
    done = status("--json")
    assert done.returncode == 0, done.stdout + done.stderr
    [host] = json.loads(done.stdout)["hosts"]
    assert host["keycloak_ready"] and host["services"]["nginx"]["active"]
    assert sorted(t["code"] for t in host["tenants"]) == sorted(converged.codes)
    assert all(t["healthy"] and t["sync_timer"] for t in host["tenants"])
    # A portal that stops shows, by name, and the command says so in its exit status.
    state = converged.state
    converged.host.run(f"systemctl stop karmayogi-portal@{state}")
    try:
        done = status()
    finally:
        converged.host.run(f"systemctl start karmayogi-portal@{state}")
    assert done.returncode == 1
    line = next(line for line in done.stdout.splitlines() if line.strip().startswith(state))
    assert "inactive" in line and "NOT healthy" in line
    assert done.stdout.rstrip().endswith("NOT all healthy")


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


CERTIFICATE = """
from django.contrib.auth import get_user_model
from django.db import transaction
from tenant_portal.catalogue.models import CatalogueEntry
from tenant_portal.learning.content import current_content
from tenant_portal.learning.models import Enrolment, LessonDone
from tenant_portal.learning.progress import complete_if_finished
learner, _ = get_user_model().objects.get_or_create(
    username="sita.verma", defaults={"first_name": "Sita", "last_name": "Verma"})
entry = CatalogueEntry.objects.filter(page__isnull=False).order_by("id").first()
with transaction.atomic():
    enrolment, _ = Enrolment.objects.get_or_create(user=learner, entry=entry)
    for lesson in current_content(entry.uuid).lesson_ids:
        LessonDone.objects.get_or_create(enrolment=enrolment, lesson=lesson)
    print(complete_if_finished(enrolment).id, entry.url)
"""


def test_the_backup_timer_backs_up_to_s3_and_restore_brings_a_lost_database_back(
    converged: Converged,
) -> None:
    host, state = converged.host, converged.state
    domain = converged.domains[state]
    # Bihar's own courses, and a learner's certificate for one of them.
    host.run(f"karmayogi-manage {state} seed_courses")
    made = host.run(f"karmayogi-manage {state} shell -c '{CERTIFICATE}'").stdout.split()
    certificate, course_url = made[-2], made[-1]
    assert "Sita Verma" in converged.get(domain, f"/certificates/{certificate}/").text
    database = database_name(state)
    pages = f"psql -d {database} -tAc 'SELECT title FROM wagtailcore_page ORDER BY path'"
    as_postgres = "cd /tmp && sudo -u postgres"
    before = host.run(f"{as_postgres} {pages}").stdout
    assert before.strip()

    host.run("systemctl start karmayogi-backup.service")  # what the timer runs, to its end
    # The backup went from the host to S3 (moto's server on this machine), manifest last.
    objects = converged.s3.client().list_objects_v2(Bucket=converged.s3.bucket)["Contents"]
    manifests = [o["Key"] for o in objects if o["Key"].endswith("/manifest.json")]
    [manifest] = manifests
    name = manifest.split("/")[-2]
    to = f"s3://{converged.s3.bucket}/national"
    kit = "set -a && . /etc/karmayogi/backup.env && set +a && cd /tmp && runuser -u karmayogi --"
    kit += " /opt/karmayogi/current/bin/karmayogi"
    listed = json.loads(host.run(f"{kit} backups --to {to} --json").stdout)
    [backup] = listed["backups"]
    assert backup["name"] == name
    assert backup["complete"] and sorted(backup["tenants"]) == sorted(converged.codes)

    # Bihar's database lost while everything that uses the databases is stopped.
    host.run("systemctl stop karmayogi.target keycloak")
    try:
        host.run(f"{as_postgres} dropdb {database}")
        source = "--source /etc/karmayogi/backup-source.json"
        host.run(f"{kit} restore --from {to}/{name} {source} --yes")
    finally:
        host.run("systemctl start keycloak karmayogi.target")
    assert host.run(f"{as_postgres} {pages}").stdout == before
    for code in converged.codes:  # serving again once started, timers included
        host.run(f"systemctl is-active karmayogi-portal@{code} karmayogi-sync@{code}.timer")
    for _ in range(30):
        if converged.get(domain, "/healthz").status_code == 200:
            break
        time.sleep(2)
    # The course and the learner's certificate are back, as a visitor sees them.
    assert converged.get(domain, course_url).status_code == 200
    assert "Sita Verma" in converged.get(domain, f"/certificates/{certificate}/").text
