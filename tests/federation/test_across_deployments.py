"""A state and a second state join a hub run by someone else, over HTTPS, by the handshake.

The tests run in order on one set of deployments (``conftest.py``): nothing is federated at
first; Bihar asks, the hub admits, Bihar accepts; Rajasthan does the same and receives Bihar's
courses through the hub; then the hub suspends and resumes Bihar. Refusals come first and
must leave nothing behind.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import ECKey
from playwright.sync_api import Page, sync_playwright

from infra.home import KitHome
from infra.targets.local.render import LocalSecretStore, hub_links
from infra.targets.local.runtime import admin_api, local_keycloak
from tests.federation.conftest import HUB, HUB_URL, Deployment, Federation
from tests.rig.chromium import launch_options, sign_in_at_keycloak
from tests.tenant_portal.browser import axe_script

TIMEOUT_MS = 60_000


# --- documents, read and forged as an attacker would ----------------------------------------


def _part(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def _encode(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def tampered(token: str, **changes: Any) -> str:
    """The document with its payload changed and its signature kept."""
    header, _, signature = token.split(".")
    return ".".join([header, _encode(_part(token, 1) | changes), signature])


def forged(token: str, **changes: Any) -> str:
    """The document signed again by a key of the forger's, under the original's key id."""
    header = _part(token, 0)
    key = ECKey.generate_key("P-256", private=True)
    payload = json.dumps(_part(token, 1) | changes).encode()
    return str(jws.serialize_compact(header, payload, key))


def one_line_refusal(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines
    return lines[0]


def members(hub: Deployment) -> dict[str, dict[str, Any]]:
    return {row["code"]: row for row in json.loads(hub.ok("federation", "members", "--json"))}


def secret_files(deployment: Deployment) -> dict[str, bytes]:
    home = KitHome.from_env(deployment.env)
    return {
        str(p.relative_to(home.root)): p.read_bytes()
        for p in [*home.secrets.glob("*.json"), *home.rendered.glob("*/hub-link.json")]
    }


@pytest.fixture(scope="module")
def bihar_request(deployments: Federation) -> Path:
    bihar = deployments.bihar
    out = bihar.home / "join-bihar.jws"
    said = bihar.ok("federation", "request", "bihar", "--out", str(out))
    assert f"bihar asks to join {HUB} ({HUB_URL})" in said
    return out


# --- the deployments, before any handshake --------------------------------------------------


def test_each_deployment_answers_by_its_names_over_tls(deployments: Federation) -> None:
    with deployments.names.httpx_client(deployments.ca) as client:
        for deployment in (deployments.hub, deployments.bihar, deployments.rajasthan):
            assert client.get(f"{deployment.url}/healthz").status_code == 200
            realm = f"https://auth.{deployment.domain}/realms/{deployment.code}"
            discovery = client.get(f"{realm}/.well-known/openid-configuration").json()
            assert discovery["issuer"] == realm
    # Nothing federates yet: Bihar knows where the hub is, but has no client there.
    assert HUB not in deployments.bihar.origins()
    assert "bihar" not in members(deployments.hub)


def test_a_join_request_says_who_asks_and_holds_no_secret(
    deployments: Federation, bihar_request: Path
) -> None:
    token = bihar_request.read_text().strip()
    header, claims = _part(token, 0), _part(token, 1)
    assert header["alg"] == "ES256" and header["kid"]
    assert claims["code"] == "bihar"
    assert claims["portalUrl"] == "https://bihar.test"
    assert claims["keysUrl"] == "https://bihar.test/federation/v1/keys"
    assert claims["brokerRedirectUri"] == (
        f"https://auth.bihar.test/realms/bihar/broker/{HUB}/endpoint"
    )
    assert claims["publish"] is True and claims["nonce"] and claims["issued"]
    assert not any("secret" in key.lower() for key in claims)


def test_forged_and_tampered_requests_are_refused_and_nothing_is_recorded(
    deployments: Federation, bihar_request: Path, tmp_path: Path
) -> None:
    hub = deployments.hub
    genuine = bihar_request.read_text().strip()
    before = members(hub)
    api = admin_api(local_keycloak(hub.env))
    attempts = {
        "forged": forged(genuine),
        "tampered": tampered(genuine, publish=False),
        "keys elsewhere": tampered(genuine, keysUrl="https://rajasthan.test/federation/v1/keys"),
        "forged under another key URL": forged(
            genuine, keysUrl="https://rajasthan.test/federation/v1/keys"
        ),
        "not a document": "hello",
    }
    for name, document in attempts.items():
        path = tmp_path / f"{name}.jws"
        path.write_text(document + "\n")
        line = one_line_refusal(
            hub.karmayogi("federation", "admit", str(path), "--out", str(tmp_path / "c.jws"))
        )
        assert genuine not in line, name
        assert not (tmp_path / "c.jws").exists(), name
    assert members(hub) == before
    api.renew_token()
    clients = api.get(f"/{HUB}/clients", "list the hub's clients", clientId="broker-bihar")
    assert clients == []


def test_a_request_older_than_the_hub_accepts_is_refused(
    deployments: Federation, bihar_request: Path, tmp_path: Path
) -> None:
    hub = deployments.hub
    before = members(hub)
    issued = _part(bihar_request.read_text().strip(), 1)["issued"]
    # The request was signed at `issued`; a hub that takes requests of at most a second is
    # given it later than that.
    while time.time() < issued + 2:
        time.sleep(0.2)
    line = one_line_refusal(
        hub.karmayogi(
            "federation",
            "admit",
            str(bihar_request),
            "--max-age",
            "1",
            "--out",
            str(tmp_path / "c.jws"),
        )
    )
    assert "ago, more than the 1 s allowed" in line, line
    assert members(hub) == before


def test_bihar_joins_the_hub_and_their_courses_cross_both_ways(
    deployments: Federation, bihar_request: Path
) -> None:
    hub, bihar = deployments.hub, deployments.bihar
    credentials = hub.home / "credentials-bihar.jws"
    said = hub.ok(
        "federation", "admit", str(bihar_request), "--out", str(credentials), "--by", "centre-ops"
    )
    assert "admitted bihar" in said
    assert credentials.stat().st_mode & 0o777 == 0o600
    row = members(hub)["bihar"]
    assert row["status"] == "active"
    assert row["keysUrl"] == "https://bihar.test/federation/v1/keys"
    assert row["admittedBy"] == "centre-ops" and row["source"] == "admitted"
    assert row["clients"]["federation"]["enabled"] and row["clients"]["broker"]["enabled"]

    # The file travels to Bihar's operator, who accepts it.
    handed = bihar.home / "from-the-hub.jws"
    handed.write_bytes(credentials.read_bytes())
    bihar.ok("federation", "accept", str(handed))
    link = hub_links(KitHome.from_env(bihar.env))["bihar"]
    assert (link.code, link.url, link.issuer) == (
        HUB,
        HUB_URL,
        f"https://auth.hub.test/realms/{HUB}",
    )
    assert bihar.origins().get(HUB, 0) > 0, "the hub's courses reached Bihar"

    # The hub pulls its members that publish.
    hub.ok("federation", "sync", HUB, folder=False)
    assert hub.origins().get("bihar", 0) > 0, "Bihar's courses reached the hub"


def test_a_replayed_request_is_refused(deployments: Federation, bihar_request: Path) -> None:
    hub = deployments.hub
    before = members(hub)
    line = one_line_refusal(
        hub.karmayogi(
            "federation", "admit", str(bihar_request), "--out", str(hub.home / "again.jws")
        )
    )
    assert "bihar" in line
    assert members(hub) == before


def test_forged_and_tampered_credentials_are_refused_and_nothing_changes(
    deployments: Federation, tmp_path: Path
) -> None:
    bihar = deployments.bihar
    genuine = (deployments.hub.home / "credentials-bihar.jws").read_text().strip()
    before = secret_files(bihar)
    attempts = {
        "forged": forged(genuine),
        "tampered": tampered(genuine, issuer="https://auth.rajasthan.test/realms/rajasthan"),
        "another member's": tampered(genuine, member="rajasthan"),
    }
    for name, document in attempts.items():
        path = tmp_path / f"{name}.jws"
        path.write_text(document + "\n")
        line = one_line_refusal(
            bihar.karmayogi("federation", "accept", str(path), "--tenant", "bihar")
        )
        assert _part(genuine, 1)["federationClientSecret"] not in line, name
    assert secret_files(bihar) == before


def test_a_hub_user_signs_into_bihar_through_the_remote_hub_realm(
    deployments: Federation, rig_chromium_home: Path
) -> None:
    hub, bihar = deployments.hub, deployments.bihar
    password = secrets.token_urlsafe(16)
    api = admin_api(local_keycloak(hub.env))
    api.post(
        f"/{HUB}/users",
        {
            "username": "meera.centre",
            "enabled": True,
            "email": "meera.centre@example.org",
            "emailVerified": True,
            "firstName": "Meera",
            "lastName": "Nair",
            "credentials": [{"type": "password", "value": password, "temporary": False}],
        },
        "create a hub user",
    )
    axe_script()  # makes sure Debian's Chromium and the fonts are installed
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**launch_options(deployments.names, rig_chromium_home))
        try:
            context = browser.new_context(locale="en-GB")
            context.set_default_timeout(TIMEOUT_MS)
            page: Page = context.new_page()
            page.goto(f"{bihar.url}/auth/authenticate/?idp=hub")
            page.locator("#kc-form-login").wait_for()
            # The hub's own login page, on the hub's deployment.
            assert page.url.startswith(f"https://auth.hub.test/realms/{HUB}/")
            assert "Meera" in sign_in_at_keycloak(page, "meera.centre", password, bihar.url)
        finally:
            browser.close()


COMPLETE_A_COURSE = """
import json
from django.contrib.auth import get_user_model
from django.utils import timezone
from tenant_portal.catalogue.models import CatalogueEntry
from tenant_portal.learning.models import Certificate, Enrolment
from tenant_portal.xapi.models import OutboxStatement
entry = CatalogueEntry.objects.filter(origin="bihar", internal=False, retired=False).first()
user = get_user_model().objects.create_user("{username}")
enrolment = Enrolment.objects.create(user=user, entry=entry, completed=timezone.now())
certificate = Certificate.objects.create(
    enrolment=enrolment,
    learner_name="Probe Learner",
    course_name=entry.name,
    course_iri=entry.iri,
    competencies=entry.competencies,
    issuer="Bihar",
    issued=timezone.now(),
)
ids = [str(s.id) for s in OutboxStatement.objects.filter(certificate=certificate.id)]
print(json.dumps(ids))
"""

HELD_AT_HUB = """
from tenant_portal.xapi.models import ReceivedStatement
print(ReceivedStatement.objects.filter(id__in={ids}).count())
"""


def test_a_completion_at_bihar_reaches_the_remote_hub(deployments: Federation) -> None:
    hub, bihar = deployments.hub, deployments.bihar
    ids = json.loads(bihar.portal_python(COMPLETE_A_COURSE.format(username="asha.probe")))
    assert ids
    bihar.ok("federation", "deliver", "bihar", folder=False)
    assert hub.portal_python(HELD_AT_HUB.format(ids=json.dumps(ids))) == str(len(ids))


# A hub course gains a document lesson (a PDF of the hub's own), published at the hub.
ADD_A_DOCUMENT = """
import hashlib, json
from django.core.files.base import ContentFile
from wagtail.documents.models import Document
from tenant_portal.catalogue.models import CatalogueEntry, CoursePage
entry = CatalogueEntry.objects.filter(
    internal=False, retired=False, page__isnull=False
).order_by("iri").first()
guide = b"%PDF-1.4\\n% the hub's guide to noting\\n"
document = Document.objects.create(title="Noting guide", file=ContentFile(guide, "guide.pdf"))
page = CoursePage.objects.get(pk=entry.page_id)
data = json.loads(json.dumps(list(page.modules.raw_data)))
data[0]["value"]["lessons"].append(
    {"type": "document", "value": {"title": "Noting guide", "document": document.pk}, "id": "guide"}
)
page.modules = data
page.save_revision().publish()
entry.refresh_from_db()
# The provider as an English page names it (the name per language, else the plain one).
provider = (entry.provider_name or {}).get("en") or entry.provider
print(json.dumps({"course": str(entry.uuid), "iri": entry.iri, "provider": provider,
                  "title": entry.name.get("en") or next(iter(entry.name.values())),
                  "sha256": hashlib.sha256(guide).hexdigest()}))
"""

# What Bihar holds of the course: its lessons in order, and each quiz's right choices.
HELD_AT_BIHAR = """
import json
from tenant_portal.learning.content import current_content
content = current_content("{course}")
print(json.dumps([
    [lesson.id, lesson.kind, [
        [i for i, c in enumerate(q["choices"]) if c["correct"]]
        for q in lesson.value("en").get("questions", [])
    ]]
    for lesson in content.lessons
]))
"""

FETCH_HEAD_BYTES = """async (href) => {
  const response = await fetch(href);
  const bytes = new Uint8Array(await response.arrayBuffer());
  return [response.status, String.fromCharCode(...bytes.slice(0, 4))];
}"""

COMPLETION_AT_HUB = """
from tenant_portal.xapi.models import ReceivedStatement
print(ReceivedStatement.objects.filter(platform="bihar", object_id="{iri}").count())
"""


def test_a_bihar_learner_takes_a_hub_course_at_home_in_chromium(
    deployments: Federation, rig_chromium_home: Path
) -> None:
    """The issue's test: a hub course with a document lesson and a quiz reaches Bihar; a
    Bihar officer takes it on Bihar's portal, the document from Bihar's own copy, to a
    certificate naming the hub's provider and their passbook; the hub counts the completion
    against its own course's IRI."""
    hub, bihar = deployments.hub, deployments.bihar
    course = json.loads(hub.portal_python(ADD_A_DOCUMENT))
    said = bihar.ok("federation", "sync", "bihar", folder=False)
    # The records' line, then the packages' ("… applied, 0 quarantined, N not offered").
    assert re.search(r"[1-9][0-9]* applied, 0 quarantined, [0-9]+ not offered", said), said
    lessons = json.loads(bihar.portal_python(HELD_AT_BIHAR.format(course=course["course"])))
    assert ["guide", "document", []] in lessons, lessons
    assert any(kind == "quiz" for _, kind, _ in lessons)

    password = secrets.token_urlsafe(16)
    api = admin_api(local_keycloak(bihar.env))
    api.post(
        "/bihar/users",
        {
            "username": "asha.home",
            "enabled": True,
            "email": "asha.home@example.org",
            "emailVerified": True,
            "firstName": "Asha",
            "lastName": "Kumari",
            "credentials": [{"type": "password", "value": password, "temporary": False}],
        },
        "create a Bihar officer",
    )
    course_url = f"{bihar.url}/courses/{course['course']}/"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**launch_options(deployments.names, rig_chromium_home))
        try:
            context = browser.new_context(locale="en-GB")
            context.set_default_timeout(TIMEOUT_MS)
            page: Page = context.new_page()
            page.goto(f"{bihar.url}/auth/authenticate/?next=/courses/{course['course']}/")
            page.locator("#kc-form-login").wait_for()
            assert page.url.startswith("https://auth.bihar.test/realms/bihar/")
            sign_in_at_keycloak(page, "asha.home", password, bihar.url)
            page.goto(course_url)
            assert "Take this course on" not in page.content()
            with page.expect_navigation():
                page.get_by_role("button", name="Enrol in this course").click()
            enrolled = page.locator("main").inner_text()
            assert f"0 of {len(lessons)} lessons done" in enrolled, enrolled[:3000]
            for lesson, kind, answers in lessons:
                article = page.locator(f"#lesson-{lesson}")
                if kind == "document":
                    link = article.get_by_role("link").first
                    href = link.get_attribute("href") or ""
                    assert href.startswith(f"/learn/files/{course['sha256']}/"), href
                    # Fetched by the page itself (Playwright's own request client does not
                    # use Chromium's resolver rules for the rig's names).
                    served = page.evaluate(FETCH_HEAD_BYTES, href)
                    assert served == [200, "%PDF"], served
                if kind == "quiz":
                    for number, right in enumerate(answers, start=1):
                        for choice in right:
                            article.locator(f"#q{lesson}-{number}-{choice}").check()
                    button = article.get_by_role("button", name=re.compile("Submit answers"))
                else:
                    button = article.get_by_role("button", name=re.compile("Mark"))
                with page.expect_navigation():
                    button.click()
                assert page.url.startswith(course_url), page.url
            page.get_by_role("link", name="Verification page").click()
            verification = page.content()
            assert "Provided by" in verification and course["provider"] in verification
            page.goto(f"{bihar.url}/passbook/")
            assert course["title"] in page.locator("main").inner_text()
        finally:
            browser.close()

    bihar.ok("federation", "deliver", "bihar", folder=False)
    assert hub.portal_python(COMPLETION_AT_HUB.format(iri=course["iri"])) == "1"


def test_rajasthan_gets_bihar_courses_relayed_by_the_hub_checked_through_its_directory(
    deployments: Federation,
) -> None:
    hub, rajasthan = deployments.hub, deployments.rajasthan
    request = rajasthan.home / "join-rajasthan.jws"
    rajasthan.ok("federation", "request", "rajasthan", "--out", str(request))
    credentials = hub.home / "credentials-rajasthan.jws"
    hub.ok("federation", "admit", str(request), "--out", str(credentials))
    rajasthan.ok("federation", "accept", str(credentials))
    origins = rajasthan.origins()
    assert origins.get(HUB, 0) > 0 and origins.get("bihar", 0) > 0, origins
    # Bihar's records came through the hub, still signed by Bihar, and were checked against
    # the keys URL the hub's signed directory gives for Bihar.
    with deployments.names.httpx_client(deployments.ca) as client:
        directory = client.get(f"{HUB_URL}/federation/v1/members")
    assert directory.status_code == 200
    listed = {m["code"]: m for m in _part(directory.text.strip(), 1)["members"]}
    assert listed["bihar"]["keysUrl"] == "https://bihar.test/federation/v1/keys"
    assert listed["rajasthan"]["status"] == "active"


def _federation_token(deployments: Federation, code: str) -> str:
    """A token of ``code``'s federation client in the hub realm, as its portal would get."""
    deployment = deployments.bihar if code == "bihar" else deployments.rajasthan
    secret = LocalSecretStore(KitHome.from_env(deployment.env)).values(code)[
        "federation_client_secret"
    ]
    with deployments.names.httpx_client(deployments.ca) as client:
        answer = client.post(
            f"https://auth.hub.test/realms/{HUB}/protocol/openid-connect/token",
            data={"grant_type": "client_credentials"},
            auth=(f"federation-{code}", secret),
        )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def test_a_suspended_member_is_refused_at_its_next_call_and_resumed(
    deployments: Federation,
) -> None:
    hub, bihar = deployments.hub, deployments.bihar
    token = _federation_token(deployments, "bihar")  # fresh: valid for minutes yet
    feed = f"{HUB_URL}/federation/v1/changes?after=0&limit=1"
    with deployments.names.httpx_client(deployments.ca) as client:
        assert client.get(feed, headers={"Authorization": f"Bearer {token}"}).status_code == 200

        hub.ok("federation", "suspend", "bihar", "--by", "centre-ops")
        assert members(hub)["bihar"]["status"] == "suspended"
        refused = client.get(feed, headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401
        assert "suspended" in refused.text

    sync = bihar.karmayogi("federation", "sync", "bihar", folder=False)
    assert sync.returncode == 1
    status = bihar.karmayogi("federation", "status", "--json")
    assert status.returncode == 1
    state = json.loads(status.stdout)["bihar"]
    assert not state["remote_hub"]["token"].startswith("granted")
    assert any(p["last_error"] for p in state["peers"])
    # A completion made while suspended waits in Bihar's outbox, and goes once resumed.
    ids = json.loads(bihar.portal_python(COMPLETE_A_COURSE.format(username="ravi.probe")))
    delivery = bihar.karmayogi("federation", "deliver", "bihar", folder=False)
    assert delivery.returncode == 1, delivery.stdout
    assert hub.portal_python(HELD_AT_HUB.format(ids=json.dumps(ids))) == "0"

    hub.ok("federation", "resume", "bihar", "--by", "centre-ops")
    bihar.ok("federation", "sync", "bihar", folder=False)
    # The refused statement waits out its backoff; the operator need not.
    bihar.ok("federation", "deliver", "bihar", "--now", folder=False)
    assert hub.portal_python(HELD_AT_HUB.format(ids=json.dumps(ids))) == str(len(ids))
    state = json.loads(bihar.ok("federation", "status", "--json"))["bihar"]
    assert state["remote_hub"]["token"].startswith("granted")
    assert not any(p["last_error"] for p in state["peers"])
    with deployments.names.httpx_client(deployments.ca) as client:
        fresh = _federation_token(deployments, "bihar")
        answer = client.get(feed, headers={"Authorization": f"Bearer {fresh}"})
        assert answer.status_code == 200


def test_rotated_credentials_stop_the_old_secret_until_the_new_file_is_accepted(
    deployments: Federation,
) -> None:
    hub, rajasthan = deployments.hub, deployments.rajasthan
    credentials = hub.home / "credentials-rajasthan-2.jws"
    hub.ok("federation", "rotate-credentials", "rajasthan", "--out", str(credentials))
    assert credentials.stat().st_mode & 0o777 == 0o600
    # Rajasthan still holds the old secret: the hub realm refuses it at once (a token it
    # was given before lives out its few minutes, as every access token does).
    status = rajasthan.karmayogi("federation", "status", "--json")
    assert status.returncode == 1
    token = json.loads(status.stdout)["rajasthan"]["remote_hub"]["token"]
    assert token.startswith("refused by the hub realm"), token
    rajasthan.ok("federation", "accept", str(credentials))
    rajasthan.ok("federation", "sync", "rajasthan", folder=False)
    state = json.loads(rajasthan.ok("federation", "status", "--json"))["rajasthan"]
    assert state["remote_hub"]["token"].startswith("granted")
