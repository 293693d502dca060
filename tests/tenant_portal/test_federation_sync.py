"""Federation between separately running instances, over real HTTP with real tokens.

The hub and Bihar run as their own gunicorn processes, each on its own loopback address and
PostgreSQL database; the test process is Rajasthan. Bihar publishes; the hub pulls Bihar and
offers its courses; Rajasthan pulls the hub and gets the hub's and Bihar's courses, each
checked against its origin's keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.test import Client
from django.utils import translation
from joserfc import jws

from infra.targets.local.keycloak import LocalKeycloak
from tenant_portal.catalogue.models import CatalogueEntry
from tenant_portal.competencies.models import Post, SubTheme
from tenant_portal.competencies.services import SAMPLE
from tenant_portal.federation.framework import FrameworkError
from tenant_portal.federation.framework import apply as apply_document
from tenant_portal.federation.framework import parse as parse_document
from tenant_portal.federation.framework import verify as verify_document
from tenant_portal.federation.models import PeerState, Quarantined
from tenant_portal.federation.records import SCHEMA_ID
from tenant_portal.federation.signing import key_ring, verify
from tenant_portal.federation.sync import (
    SyncError,
    _known_competencies,
    apply_page,
    check_page,
    fetch,
    peer,
    sync,
)
from tests.postgres import PostgresServer
from tests.tenant_portal.conftest import set_portal
from tests.tenant_portal.federation_env import Instance, Realms, hub_realms, new_instance
from tests.tenant_portal.learning import prepare_site

pytestmark = pytest.mark.django_db


def config(
    realms: Realms, code: str, *, hub: bool, peers: list[Instance], keys: dict[str, str], url: str
):
    """``url``: the hub's. The hub declares the tenants as its members (as ``make up`` does);
    a tenant learns each origin's keys URL from the hub's signed member directory."""
    pulled = {p.code for p in peers}
    return {
        "code": code,
        "isHub": hub,
        "hub": realms.hub,
        "hubIssuer": realms.issuer,
        "hubUrl": url,
        "clientId": f"federation-{code}",
        "clientSecret": f"federation-{code}",
        "peers": [{"code": p.code, "url": p.url} for p in peers],
        "members": [
            {
                "code": member,
                "name": member,
                "tenantType": "state",
                "portalUrl": keys_url.removesuffix("/federation/v1/keys"),
                "keysUrl": keys_url,
                "publish": member in pulled,
            }
            for member, keys_url in keys.items()
            if hub and member != code
        ],
        "subscribe": None if hub else {"languages": ["hi", "en"], "competencyAreas": []},
    }


class Trio:
    def __init__(self, realms: Realms, hub: Instance, bihar: Instance, keys: dict[str, str]):
        self.realms, self.hub, self.bihar, self.keys = realms, hub, bihar, keys

    @property
    def rajasthan(self) -> str:
        return self.realms.realm("rajasthan")

    def rajasthan_settings(self) -> dict[str, Any]:
        return config(
            self.realms,
            self.rajasthan,
            hub=False,
            peers=[self.hub],
            keys=self.keys,
            url=self.hub.url,
        )

    def hub_feed(self) -> list[dict[str, Any]]:
        token = self.realms.token("rajasthan")
        changes, after = [], 0
        while True:
            page = httpx.get(
                f"{self.hub.url}/federation/v1/changes",
                params={"after": after, "limit": 500},
                headers={"Authorization": f"Bearer {token}"},
            ).json()
            changes += page["changes"]
            if not page["changes"]:
                return changes
            after = page["next"]


@pytest.fixture(scope="module")
def trio(
    keycloak: LocalKeycloak, postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Trio]:
    tmp = tmp_path_factory.mktemp("federation")
    with hub_realms(keycloak, "bihar", "rajasthan") as realms:
        bihar_code, rajasthan_code = realms.realm("bihar"), realms.realm("rajasthan")
        hub = new_instance(postgres, tmp, realms.hub, "127.0.0.21", {})
        bihar = new_instance(postgres, tmp, bihar_code, "127.0.0.22", {})
        keys = {
            realms.hub: f"{hub.url}/federation/v1/keys",
            bihar_code: f"{bihar.url}/federation/v1/keys",
            rajasthan_code: "http://127.0.0.1:9/federation/v1/keys",
        }
        hub.env["KARMAYOGI_FEDERATION"] = json.dumps(
            config(realms, realms.hub, hub=True, peers=[bihar], keys=keys, url=hub.url)
        )
        bihar.env["KARMAYOGI_FEDERATION"] = json.dumps(
            config(realms, bihar_code, hub=False, peers=[hub], keys=keys, url=hub.url)
        )
        try:
            for instance in (hub, bihar):
                instance.manage("prepare_portal", "-v0")
                instance.manage("seed_courses")
                instance.start()
            yield Trio(realms, hub, bihar, keys)
        finally:
            hub.kill(signal.SIGTERM)
            bihar.kill(signal.SIGTERM)


@pytest.fixture
def rajasthan(trio: Trio, settings: Any) -> Trio:
    prepare_site()
    set_portal(settings, tenant=trio.rajasthan, federation=trio.rajasthan_settings())
    return trio


def digest(iri: str, version: int, origin: str) -> str:
    return hashlib.sha256(f"{iri}|{version}|{origin}".encode()).hexdigest()


def payload(change: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(jws.extract_compact(change["record"].encode()).payload))


def test_the_hub_relays_bihar_and_rajasthan_gets_both_verifiable(rajasthan: Trio) -> None:
    trio = rajasthan
    assert "10 applied, 0 quarantined" in trio.hub.manage("federation_sync").stdout
    result = sync(trio.realms.hub, limit=7)  # several pages
    assert result.quarantined == 0 and result.pages >= 3

    feed = trio.hub_feed()
    hub_side = sorted(
        digest(p["identifier"], p["version"], p["provider"]["identifier"])
        for p in map(payload, feed)
        if p["creativeWorkStatus"] == "Published"
    )
    ours = sorted(
        digest(e.iri, e.version, e.origin) for e in CatalogueEntry.objects.filter(retired=False)
    )
    assert ours == hub_side and len(ours) == 20
    bihar_code = trio.realms.realm("bihar")
    from_bihar = [c for c in feed if c["origin"] == bihar_code]
    assert len(from_bihar) == 10
    # Relayed by the hub, still signed by Bihar: it verifies against Bihar's keys only.
    assert verify(from_bihar[0]["record"], trio.keys[bihar_code])["provider"]["identifier"] == (
        bihar_code
    )
    page = CatalogueEntry.objects.get(uuid=from_bihar[0]["id"])
    assert page.origin == bihar_code and page.url.startswith(trio.bihar.url)
    state = PeerState.objects.get(peer=trio.realms.hub)
    assert state.cursor == state.peer_position and state.last_success is not None

    # Nothing new: a second sync applies nothing and duplicates nothing.
    assert sync(trio.realms.hub).applied == 0
    assert CatalogueEntry.objects.count() == 20


def test_bihar_pulling_the_hub_keeps_its_own_courses_its_own(rajasthan: Trio) -> None:
    trio = rajasthan
    trio.hub.manage("federation_sync")
    out = trio.bihar.manage("federation_sync").stdout
    assert "0 quarantined" in out


def shell(instance: Instance, code: str) -> str:
    """What ``code`` prints, run in the instance's own environment and database."""
    return instance.manage("shell", "--no-imports", "-c", code).stdout


def test_a_tombstone_hides_the_course_and_local_overrides_survive(rajasthan: Trio) -> None:
    trio = rajasthan
    trio.hub.manage("federation_sync")
    sync(trio.realms.hub)
    hub_course = CatalogueEntry.objects.filter(origin=trio.realms.hub).order_by("iri").first()
    assert hub_course is not None
    hub_course.hidden = True
    hub_course.featured = True
    hub_course.local_name = {"hi": "हमारा अपना शीर्षक"}
    hub_course.save(update_fields=["hidden", "featured", "local_name"])
    slug_of = "from tenant_portal.catalogue.models import CoursePage as P; "
    # The hub edits that course (a new version) and withdraws another.
    shell(
        trio.hub,
        slug_of
        + f"p = P.objects.get(translation_key='{hub_course.uuid}', locale__language_code='hi'); "
        "p.duration_minutes = 777; p.save_revision().publish()",
    )
    withdrawn = CatalogueEntry.objects.filter(origin=trio.realms.hub).order_by("-iri").first()
    assert withdrawn is not None
    shell(
        trio.hub,
        slug_of + f"[p.unpublish() for p in P.objects.filter(translation_key='{withdrawn.uuid}')]",
    )
    sync(trio.realms.hub)
    hub_course.refresh_from_db()
    withdrawn.refresh_from_db()
    assert hub_course.duration_minutes == 777 and hub_course.hidden and hub_course.featured
    assert hub_course.local_name == {"hi": "हमारा अपना शीर्षक"}
    assert withdrawn.retired


BIHAR_PROVIDER = {"en": "Government of Bihar", "hi": "बिहार सरकार"}


def test_a_v1_1_record_carries_the_providers_names_to_a_page_in_each_language(
    rajasthan: Trio, client: Client, settings: Any
) -> None:
    """Bihar names a course's provider per language; the record (v1.1, still signed by Bihar)
    carries the map through the hub, and Rajasthan shows it in the reader's language."""
    trio = rajasthan
    bihar_code = trio.realms.realm("bihar")
    course = shell(
        trio.bihar,
        "from tenant_portal.catalogue.models import CatalogueEntry as E, CoursePage as P\n"
        f"e = E.objects.filter(origin='{bihar_code}', page__isnull=False).order_by('iri')[0]\n"
        "for p in P.objects.filter(translation_key=e.uuid, alias_of=None):\n"
        f"    p.provider = {BIHAR_PROVIDER!r}.get(p.locale.language_code, 'Government of Bihar')\n"
        "    p.save_revision().publish()\n"
        "print(e.uuid)",
    ).strip()
    trio.hub.manage("federation_sync")
    sync(trio.realms.hub)

    published = [payload(c) for c in trio.hub_feed() if c["id"] == course][-1]
    assert published["schemaVersion"] == SCHEMA_ID
    assert published["provider"]["nameMap"] == BIHAR_PROVIDER
    entry = CatalogueEntry.objects.get(uuid=course)
    assert entry.origin == bihar_code and entry.provider_name == BIHAR_PROVIDER

    for language, shown, hidden in (
        ("en", "Government of Bihar", "बिहार सरकार"),
        ("hi", "बिहार सरकार", "Government of Bihar"),
    ):
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        # The request activates its language in this thread: put the previous one back.
        with translation.override(None):
            html = client.get(f"/courses/{course}/").content.decode()
        # What the reader sees; the page's JSON-LD block carries the record's whole map.
        visible = re.sub(r"<script.*?</script>", "", html, flags=re.S)
        assert shown in visible and hidden not in visible, language
        assert '"nameMap"' in html


def test_killing_the_syncing_process_mid_sync_loses_and_duplicates_nothing(
    rajasthan: Trio, tmp_path: Path
) -> None:
    """Bihar's own sync of the hub, run as a separate process and SIGKILLed between pages."""
    trio = rajasthan
    trio.hub.manage("federation_sync")
    cursor = (
        "from tenant_portal.federation.models import PeerState as S; "
        f"s = S.objects.filter(peer='{trio.realms.hub}').first(); "
        "print(s.cursor if s else 0)"
    )
    shell(
        trio.bihar,
        "from tenant_portal.federation.models import PeerState as S; S.objects.all().delete()",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "tenant_portal.manage", "federation_sync", "--limit", "1"],
        env=trio.bihar.env,
        cwd=trio.bihar.data_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while int(shell(trio.bihar, cursor).strip() or 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = int(shell(trio.bihar, cursor).strip())
    assert killed_at >= 3
    trio.bihar.manage("federation_sync")
    count = (
        "from tenant_portal.catalogue.models import CatalogueEntry as E; "
        "print(E.objects.count(), E.objects.values('uuid').distinct().count())"
    )
    total, distinct = map(int, shell(trio.bihar, count).split())
    assert total == distinct == 20  # its own 10 and the hub's 10, once each


def test_killing_the_hub_mid_sync_then_syncing_again_completes(rajasthan: Trio) -> None:
    trio = rajasthan
    trio.hub.manage("federation_sync")
    # A feed that does not end within the pages allowed stops the sync, keeping what it applied.
    with pytest.raises(SyncError, match="did not end after 2 pages"):
        sync(trio.realms.hub, limit=5, max_pages=2)
    state = PeerState.objects.get(peer=trio.realms.hub)
    assert 0 < state.cursor < state.peer_position
    trio.hub.kill()
    with pytest.raises(SyncError, match="cannot reach the feed"):
        sync(trio.realms.hub)
    assert PeerState.objects.get(peer=trio.realms.hub).last_error
    trio.hub.start()
    sync(trio.realms.hub)
    assert CatalogueEntry.objects.filter(retired=False).count() >= 19
    assert not Quarantined.objects.exists()
    state = PeerState.objects.get(peer=trio.realms.hub)
    assert state.cursor == state.peer_position and not state.last_error


def test_concurrent_writers_on_the_hub_while_a_tenant_syncs_skip_nothing(rajasthan: Trio) -> None:
    """The hub republishes courses in a loop from another process while Rajasthan syncs page by
    page; afterwards Rajasthan holds exactly the hub's latest version of every course."""
    trio = rajasthan
    trio.hub.manage("federation_sync")
    writer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tenant_portal.manage",
            "shell",
            "--no-imports",
            "-c",
            "import time\n"
            "from tenant_portal.catalogue.models import CoursePage as P\n"
            "pages = list(P.objects.filter(locale__language_code='hi', alias_of=None)[:10])\n"
            "for n in range(30):\n"
            "    p = pages[n % len(pages)]\n"
            "    p.duration_minutes = 100 + n\n"
            "    p.save_revision().publish()\n"
            "    time.sleep(0.05)\n",
        ],
        env=trio.hub.env,
        cwd=trio.hub.data_dir,
    )
    while writer.poll() is None:
        sync(trio.realms.hub, limit=3)
    assert writer.returncode == 0
    sync(trio.realms.hub)
    latest = {c["id"]: c["version"] for c in trio.hub_feed()}
    held = {str(e.uuid): e.version for e in CatalogueEntry.objects.all()}
    assert held == latest


# --- the hub's competency framework and posts (issue 19) -------------------------------------

NEW_TERM = "https://karmayogi.example/kcm/domain/agriculture-and-rural-development/e-gram-swaraj"


def extend_the_hubs_framework(trio: Trio) -> str:
    """The hub adds a sub-theme to its framework, publishes two posts, and tags one of its
    courses with the new sub-theme (once for the module's hub); the course's uuid."""
    done = trio.hub.data_dir / "extended-course"
    if done.exists():
        return done.read_text()
    sample = json.loads(SAMPLE.read_text(encoding="utf-8"))
    area = next(a for a in sample["areas"] if a["code"] == "domain")
    theme = next(t for t in area["themes"] if t["code"] == "agriculture-and-rural-development")
    theme["subThemes"].append({"code": "e-gram-swaraj", "name": {"en": "eGramSwaraj"}})
    extended = trio.hub.data_dir / "kcm-extended.json"
    extended.write_text(json.dumps(sample, ensure_ascii=False), encoding="utf-8")
    trio.hub.manage("load_competencies", str(extended))
    course = shell(
        trio.hub,
        "from tenant_portal.catalogue.models import CoursePage as P, CourseCompetency as C\n"
        "from tenant_portal.competencies.models import Post, PostCompetency as R, SubTheme as S\n"
        "p = Post.objects.create(code='bdo', name={'en': 'Block Development Officer', "
        "'hi': 'खंड विकास अधिकारी'}, department_type='rural development')\n"
        "for n, (c, l) in enumerate([('e-gram-swaraj', 2), ('gem-procurement', 2)]):\n"
        "    R.objects.create(post=p, sub_theme=S.objects.get(code=c), level=l, sort_order=n)\n"
        "p = Post.objects.create(code='dho', name={'en': 'District Health Officer (hub)'})\n"
        "R.objects.create(post=p, sub_theme=S.objects.get(code='disease-surveillance'), level=3)\n"
        "page = P.objects.filter(locale__language_code='hi', alias_of=None).order_by('pk')[0]\n"
        "C.objects.create(page=page, sub_theme=S.objects.get(code='e-gram-swaraj'), level=2)\n"
        "page = P.objects.get(pk=page.pk)\n"
        "page.save_revision().publish()\n"
        "print(page.translation_key)\n",
    ).strip()
    done.write_text(course)
    return course


def framework_token(trio: Trio, **headers: str) -> httpx.Response:
    token = trio.realms.token("rajasthan")
    return httpx.get(
        f"{trio.hub.url}/federation/v1/framework",
        headers={"Authorization": f"Bearer {token}", **headers},
    )


def test_the_hubs_framework_and_posts_arrive_and_release_what_was_quarantined(
    rajasthan: Trio,
) -> None:
    trio, hub = rajasthan, rajasthan.realms.hub
    course = extend_the_hubs_framework(trio)
    trio.hub.manage("federation_sync")
    # Rajasthan's own post of a code the hub also publishes stays its own.
    Post.objects.create(code="dho", name={"en": "Our District Health Officer"})

    # The feed alone, as a sync did before the hub published its framework: the course naming
    # the new sub-theme is quarantined, the rest applied, the cursor past them all.
    source = peer(hub)
    state, _ = PeerState.objects.get_or_create(peer=hub)
    with httpx.Client() as client, key_ring():
        page = fetch(client, source, 0, 500)
        known = _known_competencies()
        accepted, refused = check_page(source, page, known)
        apply_page(source, state, page, accepted, refused, known)
    assert [r for _, r in refused] == [f"unknown competency {NEW_TERM}"]
    assert not CatalogueEntry.objects.filter(uuid=course).exists()

    # The endpoint: the feed's token rules; the document signed by the hub, with an ETag.
    assert httpx.get(f"{trio.hub.url}/federation/v1/framework").status_code == 401
    answer = framework_token(trio)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/jose"
    document = verify_document(answer.text, trio.keys[hub])
    # The two posts above, and the demo posts seed_courses gives a hub.
    assert document["publisher"] == hub and [p["code"] for p in document["posts"]] == [
        "bdo",
        "block-development-officer",
        "dho",
        "district-health-officer",
        "section-officer",
    ]
    assert framework_token(trio, **{"If-None-Match": answer.headers["ETag"]}).status_code == 304

    result = sync(hub)
    assert result.released == 1 and result.applied == 0
    assert "posts: 4 written, 0 retired, 1 of this instance kept" in result.framework
    assert not Quarantined.objects.exists()
    entry = CatalogueEntry.objects.get(uuid=course)
    assert NEW_TERM in {c["iri"] for c in entry.competencies}
    term = SubTheme.objects.get(iri=NEW_TERM)
    assert term.theme.area.framework.origin == hub
    bdo = Post.objects.get(code="bdo")
    assert bdo.origin == hub and str(bdo) == "Block Development Officer"
    assert [(r.sub_theme.code, r.level) for r in bdo.requirements.all()] == [
        ("e-gram-swaraj", 2),
        ("gem-procurement", 2),
    ]
    assert str(Post.objects.get(code="dho")) == "Our District Health Officer"
    with pytest.raises(ValidationError, match="read-only here"):
        bdo.full_clean()  # what the Wagtail admin's form runs before a save

    # Nothing new: the document is not applied twice. A changed post arrives, versioned.
    assert sync(hub).framework == "framework unchanged"
    shell(
        trio.hub,
        "from tenant_portal.competencies.models import Post\n"
        "p = Post.objects.get(code='bdo'); p.name = {'en': 'Block Development Officer (BDO)'}\n"
        "p.save()\n",
    )
    assert "posts: 1 written" in sync(hub).framework
    bdo.refresh_from_db()
    assert str(bdo) == "Block Development Officer (BDO)" and bdo.version == 2


def test_a_bad_or_older_framework_document_is_refused_naming_the_field_and_writes_nothing(
    rajasthan: Trio,
) -> None:
    trio, hub = rajasthan, rajasthan.realms.hub
    extend_the_hubs_framework(trio)
    sync(hub)
    token = framework_token(trio).text
    good = verify_document(token, trio.keys[hub])

    header, _, signature = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({**good, "publisher": "bihar"}).encode()).rstrip(
        b"="
    )
    with pytest.raises(FrameworkError, match="signature of the framework document does not"):
        verify_document(f"{header}.{forged.decode()}.{signature}", trio.keys[hub])

    def refusal(document: dict[str, Any]) -> str:
        with pytest.raises(FrameworkError) as refused, transaction.atomic():
            apply_document(parse_document(document, hub), hub)
        return str(refused.value)

    posts = json.loads(json.dumps(good["posts"]))
    posts[0]["requires"][0]["@id"] = "https://karmayogi.example/kcm/nowhere"
    assert refusal({**good, "posts": posts}) == (
        "framework document: posts/0/requires/0/@id: not a sub-theme of this framework"
    )
    assert refusal({**good, "levels": good["levels"][:4]}).startswith(
        "framework document: levels: "
    )
    assert refusal({**good, "publisher": "bihar"}) == (
        f"framework document: publisher: 'bihar' is not the hub {hub}"
    )
    # An older document than the one applied (a replay), though it renames every post.
    posts = [{**p, "name": {"en": "Renamed"}, "version": p["version"] + 1} for p in good["posts"]]
    older = {**good, "posts": posts, "dateModified": "2020-01-01T00:00:00+00:00"}
    before = sorted(Post.objects.values_list("code", "name", "version"))
    assert "is older than the document applied" in refusal(older)
    assert sorted(Post.objects.values_list("code", "name", "version")) == before
    assert before and all(name != {"en": "Renamed"} for _, name, _ in before)
