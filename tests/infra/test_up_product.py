"""`karmayogi up` as a product, for real: the four example tenants in a kit home of their own
(with its own Keycloak), demo accounts, `status`, the tenant lifecycle, the failure cases of
the issue provoked one by one, and `down` leaving nothing behind.

The CLI runs as a separate process, as an operator runs it. The tests of this module share one
federation and run in file order; each leaves it running and healthy for the next.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import lxml.html
import pytest
from playwright.sync_api import Page

from infra.home import KitHome, read_json
from infra.targets.local.keycloak import LocalKeycloak
from infra.targets.local.portals import update_portal_state
from infra.targets.local.runtime import admin_api, up_lock
from tests.identity.browser import browser_session, form_action
from tests.infra.examples import example_folder
from tests.leftovers import kill_leftovers, processes_under
from tests.rig.names import local_address_env
from tests.tenant_portal.browser import (
    chromium_fixture,  # noqa: F401 (fixture)
    page_fixture,  # noqa: F401 (fixture)
    sign_in,
)

KARMAYOGI = str(Path(sys.executable).with_name("karmayogi"))


@dataclass
class Federation:
    env: dict[str, str]
    folder: Path
    codes: dict[str, str]  # example name -> code in this test
    up_output: str

    @property
    def home(self) -> KitHome:
        return KitHome.from_env(self.env)

    def karmayogi(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [KARMAYOGI, *args, *(["--tenants", str(self.folder)] if _takes_folder(args) else [])],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert "Traceback" not in done.stdout + done.stderr, done.stderr
        return done

    def status(self) -> tuple[int, dict[str, Any]]:
        done = self.karmayogi("status", "--json")
        return done.returncode, json.loads(done.stdout)


def _takes_folder(args: tuple[str, ...]) -> bool:
    return bool(args) and (args[0] in ("up", "status") or args[:2] in (("tenant", "new"),))


@pytest.fixture(scope="module")
def federation(
    tmp_path_factory: pytest.TempPathFactory, keycloak_dist: Path
) -> Iterator[Federation]:
    """`karmayogi up` on the four examples, cold (Keycloak downloaded, nothing started)."""
    root = tmp_path_factory.mktemp("up-home")
    folder = tmp_path_factory.mktemp("up-tenants") / "tenants"
    codes = example_folder(folder, uuid.uuid4().hex[:5])
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KARMAYOGI_")},
        "KARMAYOGI_HOME": str(root),
        "KARMAYOGI_CACHE": str(KitHome.from_env().cache),
        **local_address_env(),
    }
    fed = Federation(env, folder, codes, "")
    done = fed.karmayogi("up")
    fed.up_output = done.stdout
    try:
        assert done.returncode == 0, done.stderr
        yield fed
    finally:
        fed.karmayogi("down")
        kill_leftovers(root)


def _row(status: dict[str, Any], code: str) -> dict[str, Any]:
    """The tenant ``code``'s row of a `status --json`."""
    return next(t for t in status["tenants"] if t["code"] == code)


def _pids(status: dict[str, Any]) -> dict[str, int | None]:
    """Each tenant's portal PID in a `status --json`."""
    return {t["code"]: t["pid"] for t in status["tenants"]}


def test_up_prints_portals_logins_and_demo_accounts(federation: Federation) -> None:
    out = federation.up_output
    home = federation.home
    accounts_file = home.secrets / "demo-accounts.json"
    assert stat.S_IMODE(accounts_file.stat().st_mode) == 0o600
    accounts = read_json(accounts_file) or {}
    assert set(accounts) == set(federation.codes.values())
    code, status = federation.status()
    assert code == 0, status
    for tenant in status["tenants"]:
        line = next(line for line in out.splitlines() if line.startswith(f"{tenant['code']} "))
        assert tenant["portal_url"] in line
        assert f"/realms/{tenant['code']}/account/" in line
        for username in ("learner", "creator", "mdo-admin", "tenant-admin"):
            password = accounts[tenant["code"]][username]
            assert re.search(rf"^{tenant['code']} .* {username} +{re.escape(password)}$", out, re.M)
    assert "without OTP on this embedded default only" in out


def test_status_json_shows_every_component_healthy_and_federated(federation: Federation) -> None:
    code, status = federation.status()
    assert code == 0 and status["healthy"] is True
    assert status["keycloak"]["healthy"] is True and isinstance(status["keycloak"]["pid"], int)
    assert status["syncer"]["running"] is True
    rows = {t["code"]: t for t in status["tenants"]}
    assert set(rows) == set(federation.codes.values())
    hub = federation.codes["karmayogi-bharat"]
    for row in rows.values():
        assert row["healthy"] is True and isinstance(row["pid"], int)
        assert Path(row["log"]).is_file()
        peers = row["federation"]["peers"]
        assert peers and all(not p["last_error"] and p["last_success"] for p in peers)
        assert all(p["lag"] == 0 for p in peers), peers
        if row["code"] != hub:
            assert [p["peer"] for p in peers] == [hub]
    # Under their test codes the tenants have no seed files of their own, so each got ten
    # demo courses; the hub's feed holds its ten and the ten each of Bihar and Rajasthan
    # publish (Mauritius does not publish), and Bihar lists the hub's beside its own.
    assert rows[hub]["federation"]["feed_changes"] == 10 * 3
    bihar = rows[federation.codes["bihar"]]["portal_url"]
    catalogue = httpx.get(f"{bihar}/courses/", headers={"Accept-Language": "en"})
    total = int(re.search(r"(\d+) courses", catalogue.text).group(1))  # type: ignore[union-attr]
    assert total > 11


def test_demo_learners_sign_into_two_tenants_and_the_demo_admin_needs_no_otp(
    federation: Federation, page: Page
) -> None:
    _, status = federation.status()
    rows = {t["code"]: t for t in status["tenants"]}
    accounts = read_json(federation.home.secrets / "demo-accounts.json") or {}
    bihar, rajasthan = federation.codes["bihar"], federation.codes["rajasthan"]
    sign_in(page, rows[bihar]["portal_url"], "learner", accounts[bihar]["learner"])
    assert "Asha Verma" in page.locator(".signed-in-as").inner_text()
    sign_in(page, rows[rajasthan]["portal_url"], "learner", accounts[rajasthan]["learner"])
    assert "Asha Verma" in page.locator(".signed-in-as").inner_text()
    # Both sessions live side by side in the one browser.
    page.goto(f"{rows[bihar]['portal_url']}/")
    assert page.locator(".signed-in-as").count() == 1
    # Bihar's demo tenant admin reaches the portal's admin without an OTP step.
    page.context.clear_cookies()
    sign_in(page, rows[bihar]["portal_url"], "tenant-admin", accounts[bihar]["tenant-admin"])
    page.goto(f"{rows[bihar]['portal_url']}/admin/")
    assert page.url.startswith(f"{rows[bihar]['portal_url']}/admin/")
    assert page.locator("#kc-otp-login-form, #otp").count() == 0


# The hub's first demo course (behavioural, in English and Hindi): every example state subscribes
# to it, Mauritius too (English, behavioural and functional areas only).
# (Read as plain JSON: the seed's models need Django, which this module never starts.)
SEED = Path(__file__).parents[2] / "tenant_portal" / "learning" / "seed" / "karmayogi-bharat"
HUB_COURSE = json.loads((SEED / "behavioural.json").read_text(encoding="utf-8"))["courses"][0]
HUB_LESSONS = [lesson for module in HUB_COURSE["modules"] for lesson in module["lessons"]]


def _learning_forms(page: str) -> list[lxml.html.FormElement]:
    """The page's enrol, lesson and quiz forms (not its search, language or sign-out forms)."""
    return [form for form in lxml.html.fromstring(page).forms if "/learn/" in (form.action or "")]


def _link(page: str, text: str) -> str:
    """The address of the page's one link reading ``text``."""
    [href] = {
        a.get("href")
        for a in lxml.html.fromstring(page).iter("a")
        if a.text_content().strip() == text
    }
    assert href, text
    return href


def _text(page: str) -> str:
    """A page's whole text, spaces collapsed."""
    return " ".join(lxml.html.fromstring(page).text_content().split())


def _hub_course(page: str, title: str) -> str:
    """The address of the hub's course ``title`` in a state's catalogue page: a record page
    (``/courses/<uuid>/``, held from its package), not the state's own copy of the seed course
    (a page of its own) nor another state's copy relayed by the hub (another provider)."""
    [href] = [
        link.get("href")
        for card in lxml.html.fromstring(page).find_class("course-card")
        for link in card.iter("a")
        if link.text_content().strip() == title
        and re.fullmatch(r"/courses/[0-9a-f-]{36}/", link.get("href") or "")
        and ("Karmayogi Bharat" in card.text_content() or "कर्मयोगी भारत" in card.text_content())
    ]
    assert href, title
    return href


def _post_form(
    session: httpx.Client, base: str, form: lxml.html.FormElement, data: dict[str, Any]
) -> str:
    """Submit the form as a browser would (its CSRF field included); the page the portal
    answers with after its redirect."""
    answered = session.post(f"{base}{form.action}", data={**dict(form.form_values()), **data})
    assert answered.status_code == 302, (form.action, answered.text[:2000])
    page = session.get(f"{base}{answered.headers['location']}")
    assert page.status_code == 200
    return page.text


def _take_course_at_home(session: httpx.Client, base: str, course_url: str) -> str:
    """Enrol, then do every lesson in page order, quizzes with the seed's right answers; the
    course page at the end."""
    quizzes = [
        {
            f"q{n}": [str(i) for i, choice in enumerate(question["choices"]) if choice["correct"]]
            for n, question in enumerate(lesson["questions"], start=1)
        }
        for lesson in HUB_LESSONS
        if lesson["type"] == "quiz"
    ]
    page = session.get(course_url).text
    assert "Take this course on" not in page
    [enrol] = _learning_forms(page)
    assert "/enrol/" in (enrol.action or "")
    page = _post_form(session, base, enrol, {})
    while forms := _learning_forms(page):
        quiz = "/quizzes/" in (forms[0].action or "")
        page = _post_form(session, base, forms[0], quizzes.pop(0) if quiz else {})
    assert not quizzes
    return page


def test_a_demo_learner_of_every_state_takes_a_hub_course_on_their_own_portal(
    federation: Federation,
) -> None:
    """Learning at home after `up`: each state's syncer pulled the hub course's content package
    with its record, and the state's demo learner takes it on the state's own portal, to a
    certificate its portal issues naming the hub's provider, and a passbook entry. Before that,
    her My learning shows her post (Section Officer, the hub's demo post) and a path."""
    _, status = federation.status()
    accounts = read_json(federation.home.secrets / "demo-accounts.json") or {}
    title = HUB_COURSE["title"]["en"]
    for example in ("bihar", "rajasthan", "mauritius"):
        code = federation.codes[example]
        base = _row(status, code)["portal_url"]
        with browser_session() as session:
            session.headers["Accept-Language"] = "en"
            login = session.get(f"{base}/auth/authenticate/", follow_redirects=True)
            landed = session.post(
                form_action(login.text),
                data={"username": "learner", "password": accounts[code]["learner"]},
                follow_redirects=True,
            )
            assert "Signed in as Asha Verma" in _text(landed.text), example
            # Her post comes from the realm's demo directory attribute and the hub's posts,
            # synced with its framework; My learning shows its gaps and a path closing them.
            mine = session.get(f"{base}/passbook/").text
            assert "Your post: Section Officer (set by your directory)" in _text(mine), example
            [path] = lxml.html.fromstring(mine).find_class("learning-path")
            assert len(path.findall("li")) >= 1, example
            assert "Takes Integrity from level 0 to the 2 your post needs" in _text(mine), example
            found = session.get(f"{base}/courses/", params={"q": title}).text
            href = _hub_course(found, title)
            done = _take_course_at_home(session, base, f"{base}{href}")
            lessons = len(HUB_LESSONS)
            assert f"{lessons} of {lessons} lessons done" in _text(done), example
            assert "Completed on" in _text(done), example
            verify = _link(done, "Verification page")
            verification = _text(session.get(f"{base}{verify}").text)
            assert "Provided by" in verification and "Karmayogi Bharat" in verification, example
            assert title in _text(session.get(f"{base}/passbook/").text), example


def test_a_second_up_while_one_runs_is_refused(federation: Federation) -> None:
    with up_lock(federation.home):
        done = federation.karmayogi("up")
    assert done.returncode == 1
    assert f"is already running (pid {os.getpid()}) on this home" in done.stderr


def test_a_dead_portal_and_a_dead_keycloak_are_reported_then_restarted(
    federation: Federation,
) -> None:
    _, before = federation.status()
    bihar = federation.codes["bihar"]
    portal_pid = _row(before, bihar)["pid"]
    os.killpg(portal_pid, signal.SIGKILL)
    os.killpg(before["keycloak"]["pid"], signal.SIGKILL)
    _wait_gone(portal_pid)
    code, status = federation.status()
    assert code == 1 and status["healthy"] is False
    assert status["keycloak"]["healthy"] is False
    assert _row(status, bihar)["healthy"] is False
    text = federation.karmayogi("status")
    assert "Keycloak 26" in text.stdout and "DOWN" in text.stdout and text.returncode == 1

    done = federation.karmayogi("up")
    assert done.returncode == 0, done.stderr
    code, status = federation.status()
    assert code == 0, status
    assert _row(status, bihar)["pid"] != portal_pid
    assert status["keycloak"]["pid"] != before["keycloak"]["pid"]


def test_a_portal_no_state_file_names_is_replaced_not_left_holding_its_port(
    federation: Federation,
) -> None:
    _, before = federation.status()
    mauritius = federation.codes["mauritius"]
    orphan = _row(before, mauritius)["pid"]
    update_portal_state(mauritius, federation.home, pid=None)  # as if its `up` were killed

    done = federation.karmayogi("up")
    assert done.returncode == 0, done.stderr
    _wait_gone(orphan)
    code, status = federation.status()
    assert code == 0, status
    assert _row(status, mauritius)["pid"] != orphan


def test_a_portal_that_cannot_start_is_reported_while_the_others_run(
    federation: Federation,
) -> None:
    _, before = federation.status()
    rajasthan = federation.codes["rajasthan"]
    row = _row(before, rajasthan)
    url = httpx.URL(row["portal_url"])
    os.killpg(row["pid"], signal.SIGTERM)
    _wait_gone(row["pid"])
    with socket.socket() as squatter:
        squatter.bind((url.host, url.port))  # another program took the portal's port
        squatter.listen()
        done = federation.karmayogi("up")
    assert done.returncode == 1
    assert f"error: {rajasthan}: the portal" in done.stderr
    assert "Address already in use" in done.stderr  # the tail of its log
    code, status = federation.status()
    assert code == 1
    healthy = {t["code"]: t["healthy"] for t in status["tenants"]}
    assert healthy.pop(rajasthan) is False and all(healthy.values())
    # The others were not restarted.
    others = {c: pid for c, pid in _pids(before).items() if c != rajasthan}
    assert {c: pid for c, pid in _pids(status).items() if c != rajasthan} == others
    assert federation.karmayogi("up").returncode == 0
    assert federation.status()[0] == 0


def test_a_new_tenant_comes_online_and_is_offboarded_with_an_archive(
    federation: Federation,
) -> None:
    _, before = federation.status()
    code = f"odisha-{uuid.uuid4().hex[:4]}"
    done = federation.karmayogi(
        "tenant", "new", "--yes", "--code", code, "--name", "Odisha", "--type", "state",
        "--languages", "or,en", "--domain", f"learn.{code}.example",
        "--primary", "#0B5563", "--accent", "#B5651D",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    spec_file = federation.folder / f"{code}.yaml"
    assert spec_file.is_file() and (federation.folder / "branding" / f"{code}.svg").is_file()

    done = federation.karmayogi("up")
    assert done.returncode == 0, done.stderr
    code_, status = federation.status()
    assert code_ == 0, status
    rows = {t["code"]: t for t in status["tenants"]}
    assert rows[code]["healthy"] is True
    for tenant in before["tenants"]:  # brought online without restarting the others
        assert rows[tenant["code"]]["pid"] == tenant["pid"]
    home_page = httpx.get(f"{rows[code]['portal_url']}/", headers={"Accept-Language": "en"})
    assert "Odisha Karmayogi" in home_page.text

    kc = LocalKeycloak(federation.home, federation.env)
    api = admin_api(kc)
    hub = federation.codes["karmayogi-bharat"]
    demo_password = (read_json(federation.home.secrets / "demo-accounts.json") or {})[code]
    done = federation.karmayogi(
        "tenant", "remove", code, "--yes", "--tenants", str(federation.folder)
    )
    assert done.returncode == 0, done.stderr
    archive = Path(done.stdout.strip().rsplit(" ", 1)[1])
    assert archive.parent == federation.home.root / "archives"
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        member = lambda name: tar.extractfile(f"{code}/{name}").read()  # noqa: E731
        manifest = json.loads(member("manifest.json"))
        assert {f"{code}/{name}" for name in manifest["files"]} | {f"{code}/manifest.json"} == names
        assert f"{code}/portal/portal.sqlite3" in names
        realm = json.loads(member("keycloak/realm.json"))
        users = [json.loads(line) for line in member("keycloak/users.jsonl").splitlines()]
        clients = json.loads(member("keycloak/hub-clients.json"))
        database = member("portal/portal.sqlite3")
        everything = b"".join(member(n.split("/", 1)[1]) for n in names)
    assert realm["realm"] == code
    assert {u["username"] for u in users} >= {"learner", "creator", "mdo-admin", "tenant-admin"}
    assert all("credentials" not in u for u in users)
    assert any("tenant_admin" in u["realmRoles"] for u in users)
    assert {c["clientId"] for c in clients} >= {f"federation-{code}"}
    assert all("secret" not in c for c in clients)
    for password in demo_password.values():
        assert password.encode() not in everything
    copy = federation.home.root / "restored.sqlite3"
    copy.write_bytes(database)
    with contextlib.closing(sqlite3.connect(copy)) as db:
        assert db.execute("select count(*) from catalogue_catalogueentry").fetchone()[0] > 0
    copy.unlink()

    # Gone: the realm, its hub clients, its portal, its spec; the others untouched.
    assert api.get(f"/{code}", "realm") is None
    assert not api.get(f"/{hub}/clients", "clients", clientId=f"federation-{code}")
    assert not spec_file.exists()
    assert not (federation.home.root / "portals" / code).exists()
    code_, status = federation.status()
    assert code_ == 0, status
    assert {t["code"] for t in status["tenants"]} == set(federation.codes.values())
    assert _pids(status) == _pids(before)


def test_an_interrupted_up_is_finished_by_the_next(federation: Federation) -> None:
    assert federation.karmayogi("down").returncode == 0
    process = subprocess.Popen(
        [KARMAYOGI, "up", "--tenants", str(federation.folder)],
        env=federation.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        # Ctrl-C reaches it as in a terminal, even when the suite itself was started as a
        # background job of a script (which starts with SIGINT ignored, inherited).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stderr is not None
    for line in process.stderr:
        if "preparing and starting" in line:
            break
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
    rest = process.stderr.read()
    assert process.wait(timeout=60) == 130
    assert "`karmayogi up` again finishes the job" in rest

    done = federation.karmayogi("up")
    assert done.returncode == 0, done.stderr
    code, status = federation.status()
    assert code == 0, json.dumps(status, indent=1)


def test_down_stops_every_process_it_started(federation: Federation) -> None:
    _, status = federation.status()
    pids = [status["keycloak"]["pid"], status["syncer"]["pid"]]
    pids += [t["pid"] for t in status["tenants"]]
    assert all(isinstance(pid, int) for pid in pids)
    done = federation.karmayogi("down")
    assert done.returncode == 0 and "Keycloak" in done.stdout
    for pid in pids:
        _wait_gone(pid)
    assert processes_under(federation.home.root) == []
    code, status = federation.status()
    assert code == 1 and status["keycloak"]["pid"] is None
    assert all(t["pid"] is None for t in status["tenants"])
    # Data is kept: the next `up` resumes from it (and the fixture's `down` ends the module).
    assert (
        federation.home.root / "portals" / federation.codes["bihar"] / "portal.sqlite3"
    ).is_file()


def _wait_gone(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            return
        if state == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return
        time.sleep(0.2)
    raise AssertionError(f"process {pid} is still running")


def test_a_spec_error_stops_up_before_anything_starts(tmp_path: Path) -> None:
    folder = tmp_path / "tenants"
    folder.mkdir()
    (folder / "broken.yaml").write_text(
        "apiVersion: karmayogi.dev/v1\nkind: Tenant\nmetadata: {code: Not A Code}\n",
        encoding="utf-8",
    )
    root = tmp_path / "home"
    env = {**os.environ, "KARMAYOGI_HOME": str(root)}
    done = subprocess.run(
        [KARMAYOGI, "up", "--tenants", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 1
    assert f"{folder / 'broken.yaml'}:3: metadata.code" in done.stderr
    assert "Traceback" not in done.stderr
    assert not root.exists()  # nothing was started, nothing written


def test_tenant_new_asks_and_refuses_a_bad_answer_without_leaving_files(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from infra.cli import app

    folder = tmp_path / "tenants"
    example_folder(folder, "t1")  # a folder with a hub to join
    answers = "goa\nGoa\nstate\nkok,en\nlearn.goa.example\n#0B5563\n#B5651D\n"
    result = CliRunner().invoke(app, ["tenant", "new", "--tenants", str(folder)], input=answers)
    assert result.exit_code == 0, result.output
    spec = (folder / "goa.yaml").read_text(encoding="utf-8")
    assert "code: goa" in spec and "- kok" in spec and "hub: karmayogi-t1" in spec

    bad = "kerala\nKerala\nstate\nml,en\nlearn.kerala.example\nnot-a-colour\n#B5651D\n"
    result = CliRunner().invoke(app, ["tenant", "new", "--tenants", str(folder)], input=bad)
    assert result.exit_code == 1
    assert "kerala.yaml" in result.output and "spec.branding.colors.primary" in result.output
    assert not (folder / "kerala.yaml").exists()
    assert not (folder / "branding" / "kerala.svg").exists()
