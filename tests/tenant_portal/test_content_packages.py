"""Content packages (issue 17, item 2): the origin's package of its course, and a member pulling
packages from its hub, where every hostile package is quarantined with its reason, nothing of
it applied and the previous version still served.

The hub is the small hostile peer of ``test_federation_hostile`` (records and packages signed
by keys the test makes); the member's token comes from the real hub realm in Keycloak.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from joserfc import jws
from joserfc.jwk import ECKey
from wagtail.documents.models import Document

from tenant_portal.catalogue.models import CatalogueEntry
from tenant_portal.federation import packages
from tenant_portal.federation.models import HeldFile, HeldPackage, QuarantinedPackage
from tenant_portal.federation.packages import SCHEMA_ID, package_of, pull_packages, signed_package
from tenant_portal.federation.signing import current_key
from tenant_portal.federation.sync import access_token, sync
from tenant_portal.learning.content import current_content, current_version
from tenant_portal.learning.models import Certificate, Enrolment, LessonDone
from tenant_portal.xapi.models import OutboxStatement
from tests.tenant_portal.conftest import set_portal
from tests.tenant_portal.learning import add_course, make_user, prepare_site
from tests.tenant_portal.test_federation_hostile import (
    BIHAR_KEY,
    HUB_KEY,
    Peer,
    change,
    peer,
    realms,
    record,
    signed,
)

__all__ = ["peer", "realms"]  # fixtures, used by name

pytestmark = pytest.mark.django_db

GUIDE = b"%PDF-1.4\n% a one-page guide to relief camps\n"
SHA = hashlib.sha256(GUIDE).hexdigest()
# A second edition of the guide, which the member does not hold yet.
EDITION = b"%PDF-1.4\n% the second guide to relief camps\n"
EDITION_SHA = hashlib.sha256(EDITION).hexdigest()


def lessons(title: str = "Plan the camp", file: str = SHA, **quiz: Any) -> list[dict[str, Any]]:
    question = {
        "prompt": "What comes first?",
        "choices": [{"text": "water", "correct": True}, {"text": "television", "correct": False}],
    }
    return [
        {
            "id": "plan",
            "kind": "text",
            "module": {"en": "Before", "hi": "पहले"},
            "content": {
                "en": {
                    "title": title,
                    "body": '<p>Read <a href="https://ndma.gov.in/">this</a>.</p>',
                },
                "hi": {"title": "शिविर की योजना", "body": "<p>पढ़ें।</p>"},
            },
        },
        {
            "id": "guide",
            "kind": "document",
            "module": {"en": "Before"},
            "content": {"en": {"title": "The guide", "file": file}},
        },
        {
            "id": "check",
            "kind": "quiz",
            "module": {"en": "After"},
            "content": {
                "en": {
                    "title": "Check",
                    "passMark": 100,
                    "maxAttempts": 2,
                    "questions": [{**question, **quiz}],
                }
            },
        },
    ]


def package(course: uuid.UUID, version: int = 1, **over: Any) -> dict[str, Any]:
    return {
        "schemaVersion": SCHEMA_ID,
        "course": f"https://hub.example.org/courses/{course}",
        "origin": "hub",
        "version": version,
        "languages": ["en", "hi"],
        "lessons": lessons(),
        "files": [
            {"sha256": SHA, "name": "guide.pdf", "mediaType": "application/pdf", "size": len(GUIDE)}
        ],
        **over,
    }


class Hub:
    """The hostile peer as the hub: it serves a course's record, package and file."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.course = uuid.uuid4()
        self.position = 0

    def offer(
        self,
        version: int,
        body: dict[str, Any],
        *,
        key: ECKey = HUB_KEY,
        files: dict[str, bytes] | None = None,
    ) -> None:
        data = record(self.course, version=version)
        self.position += 1
        self.peer.serve_page([change(self.position, signed(data), data)])
        sync("hub")
        base = f"/federation/v1/packages/{self.course}"
        for path in [p for p in self.peer.routes if p.startswith(f"{base}/files/")]:
            del self.peer.routes[path]
        token = signed(body, key).encode()
        self.peer.routes[base] = lambda _p: (200, token, 0.0)
        for sha, data_bytes in (files or {SHA: GUIDE}).items():
            self.peer.routes[f"{base}/files/{sha}"] = lambda _p, b=data_bytes: (200, b, 0.0)

    def pull(self) -> packages.PullResult:
        return pull_packages("hub", self.peer.url, access_token())


@pytest.fixture
def hub(peer: Peer) -> Hub:
    return Hub(peer)


def test_a_member_takes_a_hub_course_from_its_own_copy(hub: Hub, settings: Any) -> None:
    hub.offer(1, package(hub.course))
    assert hub.pull().applied == 1
    content = current_content(hub.course)
    assert content is not None and [lesson.id for lesson in content.lessons] == [
        "plan",
        "guide",
        "check",
    ]
    held = HeldFile.objects.get()
    assert held.sha256 == SHA and held.file.read() == GUIDE
    document = content.lesson("guide").value("en")["document"]
    hub.peer.routes.clear()  # the member serves its own copy, without the hub
    served = Client().get(document["url"])
    assert served.status_code == 200 and b"".join(served.streaming_content) == GUIDE
    assert served["Content-Type"] == "application/pdf"
    assert hub.pull().applied == 0  # held at its record's version: nothing to pull

    # A member serves no one else's package; the hub serves its verified copies, unchanged.
    entry = CatalogueEntry.objects.get(uuid=hub.course)
    assert signed_package(entry) is None and packages.package_file(entry, SHA) is None
    set_portal(settings, federation=replace(settings.PORTAL.federation, is_hub=True))
    assert signed_package(entry) == HeldPackage.objects.get().jws
    found = packages.package_file(entry, SHA)
    assert (
        found is not None
        and found[0].read() == GUIDE
        and found[1:] == ("application/pdf", len(GUIDE))
    )
    assert packages.package_file(entry, EDITION_SHA) is None
    set_portal(settings, federation=replace(settings.PORTAL.federation, is_hub=False))

    learner = Client()
    learner.force_login(make_user("flood"))
    learner.post(reverse("enrol", args=[hub.course]))
    learner.post(reverse("lesson_done", args=[hub.course, "plan"]))
    learner.post(reverse("lesson_done", args=[hub.course, "guide"]))
    learner.post(reverse("quiz", args=[hub.course, "check"]), {"q1": "0"})
    assert Enrolment.objects.get().completed is not None


def test_a_new_version_keeps_the_learners_progress(hub: Hub) -> None:
    hub.offer(1, package(hub.course))
    hub.pull()
    learner = Client()
    learner.force_login(make_user("steady"))
    learner.post(reverse("enrol", args=[hub.course]))
    learner.post(reverse("lesson_done", args=[hub.course, "plan"]))
    hub.offer(2, package(hub.course, 2, lessons=lessons("Plan the camp, again")))
    assert hub.pull().applied == 1
    content = current_content(hub.course)
    assert content is not None
    assert content.lesson("plan").value("en")["title"] == "Plan the camp, again"
    assert LessonDone.objects.filter(lesson="plan").count() == 1
    learner.post(reverse("lesson_done", args=[hub.course, "guide"]))
    learner.post(reverse("quiz", args=[hub.course, "check"]), {"q1": "0"})
    assert Enrolment.objects.get().completed is not None


OTHER = uuid.uuid4()
Make = Callable[[uuid.UUID, int], dict[str, Any]]


def edition(course: uuid.UUID, version: int) -> dict[str, Any]:
    """The package with the guide's second edition."""
    listed = {"sha256": EDITION_SHA, "name": "guide.pdf", "mediaType": "application/pdf"}
    return package(
        course,
        version,
        lessons=lessons(file=EDITION_SHA),
        files=[{**listed, "size": len(EDITION)}],
    )


def first_text(body: str) -> Make:
    def make(course: uuid.UUID, version: int) -> dict[str, Any]:
        text = {**lessons()[0], "content": {"en": {"title": "x", "body": body}}}
        return package(course, version, lessons=[text, *lessons()[1:]])

    return make


HOSTILE: dict[str, tuple[Make, dict[str, Any], str]] = {
    "bytes that do not match the hash": (
        edition,
        {"files": {EDITION_SHA: EDITION.replace(b"relief", b"RELIEF")}},
        "file guide.pdf: its bytes do not match its SHA-256",
    ),
    "more bytes than listed": (
        edition,
        {"files": {EDITION_SHA: EDITION + b"and more"}},
        "file guide.pdf is larger than its listed",
    ),
    "a file not served": (edition, {"files": {}}, "file guide.pdf is not served"),
    "a file over the limit": (
        lambda course, version: package(
            course,
            version,
            files=[
                {"sha256": SHA, "name": "guide.pdf", "mediaType": "application/pdf", "size": 2**21}
            ],
        ),
        {},
        "file guide.pdf is over the limit of 1048576 bytes",
    ),
    "a package for another course": (
        lambda course, version: {
            **package(course, version),
            "course": f"https://hub.example.org/courses/{OTHER}",
        },
        {},
        f"the package is for another course ({OTHER})",
    ),
    "signed by another instance": (
        package,
        {"key": BIHAR_KEY},
        "signature: key 'bihar-key' is not one of the origin's keys",
    ),
    "a quiz with no correct answer": (
        lambda course, version: package(
            course,
            version,
            lessons=lessons(
                choices=[{"text": "a", "correct": False}, {"text": "b", "correct": False}]
            ),
        ),
        {},
        "lesson check (en): question 1 has no correct answer",
    ),
    "script in lesson text": (
        first_text("<p>Hi<script>steal()</script></p>"),
        {},
        "lesson plan (en): <script> is not allowed in lesson text",
    ),
    "an event handler in lesson text": (
        first_text('<p onclick="steal()">Hi</p>'),
        {},
        "lesson plan (en): the attribute 'onclick' is not allowed in lesson text",
    ),
    "a javascript: link": (
        first_text('<a href="javascript:steal()">x</a>'),
        {},
        "lesson plan (en): a link to 'javascript' in lesson text",
    ),
    "not a package": (
        lambda course, version: {"lessons": "many"},
        {},
        "schema: (package): 'schemaVersion' is a required property",
    ),
}


def test_a_file_the_hub_fails_to_serve_holds_back_its_course_only_until_the_next_round(
    hub: Hub,
) -> None:
    """A 503 on one course's file is no reason to quarantine it (nothing wrong arrived) nor
    to stop the round: the next course is pulled, and the first follows in the next round."""
    hub.offer(1, package(hub.course))
    other = Hub(hub.peer)
    other.position = hub.position
    edition = {"sha256": EDITION_SHA, "name": "edition.pdf", "mediaType": "application/pdf"}
    other.offer(
        1,
        package(
            other.course,
            lessons=lessons(file=EDITION_SHA),
            files=[{**edition, "size": len(EDITION)}],
        ),
        files={EDITION_SHA: EDITION},
    )
    busy = f"/federation/v1/packages/{hub.course}/files/{SHA}"
    served = hub.peer.routes[busy]
    hub.peer.routes[busy] = lambda _p: (503, b"busy", 0.0)
    first = hub.pull()
    assert (first.applied, first.quarantined, len(first.failed)) == (1, 0, 1)
    assert f"course {hub.course}: file guide.pdf: answered 503" in first.failed[0]
    assert current_content(hub.course) is None and current_content(other.course) is not None
    assert not QuarantinedPackage.objects.exists()
    hub.peer.routes[busy] = served
    second = hub.pull()
    assert (second.applied, second.failed) == (1, [])
    assert current_content(hub.course) is not None


def test_hostile_packages_are_quarantined_and_the_previous_version_still_served(
    hub: Hub, settings: Any
) -> None:
    """One course, one hostile version after another (one setup, not one per case)."""
    set_portal(settings, max_upload_mb=1)
    hub.offer(1, package(hub.course))
    hub.pull()
    before = current_version(hub.course)
    for version, (case, (make, how, reason)) in enumerate(HOSTILE.items(), start=2):
        hub.offer(version, make(hub.course, version), key=how.get("key", HUB_KEY), **how_files(how))
        result = hub.pull()
        assert (result.applied, result.quarantined) == (0, 1), case
        held = QuarantinedPackage.objects.get(version=version)
        assert reason in held.reason, f"{case}: {held.reason}"
        assert (held.peer, held.uuid) == ("hub", hub.course)
        assert current_version(hub.course) == before, case  # nothing half-applied
        assert HeldPackage.objects.get().version == 1, case
        assert [f.sha256 for f in HeldFile.objects.all()] == [SHA], case
        assert hub.pull().quarantined == 0, case  # a refused version is not fetched again
    assert HeldFile.objects.get().file.read() == GUIDE
    assert QuarantinedPackage.objects.count() == len(HOSTILE)
    from tenant_portal.federation.management.commands.federation_status import status

    (row,) = status()["peers"]
    assert (row["quarantined"], row["quarantined_packages"]) == (0, len(HOSTILE))

    from django.contrib.auth import get_user_model

    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", "root@example.org"))
    listing = admin.get("/admin/quarantined_packages/").content.decode()
    assert "question 1 has no correct answer" in listing


def how_files(how: dict[str, Any]) -> dict[str, Any]:
    return {"files": how["files"]} if "files" in how else {}


def test_the_origin_offers_its_course_as_a_signed_package_with_its_files(settings: Any) -> None:
    catalogue = prepare_site()
    document = Document.objects.create(title="Noting guide", file=ContentFile(GUIDE, "note.pdf"))
    page = add_course(catalogue, "notes")
    data = json.loads(json.dumps(list(page.modules.raw_data)))
    data[0]["value"]["lessons"].append(
        {"type": "document", "value": {"title": "Guide", "document": document.pk}, "id": "doc"}
    )
    page.modules = data
    page.save_revision().publish()
    entry = CatalogueEntry.objects.get(uuid=page.translation_key)

    token = signed_package(entry)
    assert token is not None
    key = ECKey.import_key(current_key().public_jwk)
    body = json.loads(jws.deserialize_compact(token.encode(), key, algorithms=["ES256"]).payload)
    packages.validate(body)
    assert body["course"] == entry.iri and body["version"] == entry.version
    assert body["languages"] == ["en", "hi"]
    assert body["files"] == [
        {"sha256": SHA, "name": "note.pdf", "mediaType": "application/pdf", "size": len(GUIDE)}
    ]
    guide = next(lesson for lesson in body["lessons"] if lesson["id"] == "doc")
    assert guide["content"]["en"] == {"title": "Guide", "file": SHA}
    quiz = next(lesson for lesson in body["lessons"] if lesson["kind"] == "quiz")
    assert quiz["content"]["hi"]["passMark"] == 50
    handle, media, size = packages.package_file(entry, SHA)  # type: ignore[misc]
    assert handle.read() == GUIDE and (media, size) == ("application/pdf", len(GUIDE))

    page.internal = True
    page.save_revision().publish()
    internal = CatalogueEntry.objects.get(pk=entry.pk)
    assert package_of(internal) is None and signed_package(internal) is None


# --- learning at home (issue 17, items 3 and 4) ------------------------------------------------


def finish_at_home(client: Client, course: uuid.UUID) -> None:
    for lesson in ("plan", "guide"):
        assert client.post(reverse("lesson_done", args=[course, lesson])).status_code == 302
    assert client.post(reverse("quiz", args=[course, "check"]), {"q1": "0"}).status_code == 302


def test_a_hub_course_is_learned_on_the_members_own_portal_to_a_certificate(hub: Hub) -> None:
    hub.offer(1, package(hub.course))
    hub.pull()
    page = f"/courses/{hub.course}/"
    anonymous = Client().get(page).content.decode()
    assert "Plan the camp" in anonymous and "Sign in to enrol" in anonymous
    assert "Take this course on" not in anonymous

    learner = Client()
    learner.force_login(make_user("sita", name_local="सीता वर्मा"))
    enrolled = learner.post(reverse("enrol", args=[hub.course]))
    assert enrolled["Location"] == f"{page}#lessons"  # back here, not to the origin
    html = learner.get(page, headers={"accept-language": "hi"}).content.decode()
    assert "शिविर की योजना" in html
    finish_at_home(learner, hub.course)

    certificate = Certificate.objects.get()
    assert certificate.course_iri == f"https://hub.example.org/courses/{hub.course}"
    assert certificate.issuer == settings.PORTAL.site_name and certificate.provider == "Hub"
    verify = Client().get(reverse("verify_certificate", args=[certificate.id])).content.decode()
    assert "Provided by" in verify and "Hub" in verify
    assert "Noting and drafting" in learner.get("/passbook/").content.decode()
    pdf = learner.get(reverse("download_certificate", args=[certificate.id]))
    assert pdf.content.startswith(b"%PDF")
    # The pseudonymous completion names the origin's course, so the hub counts it wherever
    # it was taken.
    statement = OutboxStatement.objects.get(certificate=certificate.id).statement
    assert statement["object"]["id"] == certificate.course_iri


def test_a_withdrawn_course_takes_no_new_enrolments_and_its_learners_may_finish(
    hub: Hub,
) -> None:
    hub.offer(1, package(hub.course))
    hub.pull()
    early, late, done = (Client() for _ in range(3))
    for client, name in ((early, "early"), (late, "late"), (done, "done")):
        client.force_login(make_user(name))
    for client in (early, done):
        client.post(reverse("enrol", args=[hub.course]))
    finish_at_home(done, hub.course)
    certificate = Certificate.objects.get()

    withdrawn = record(hub.course, version=2, creativeWorkStatus="Withdrawn")
    hub.position += 1
    hub.peer.serve_page([change(hub.position, signed(withdrawn), withdrawn)])
    sync("hub")
    assert CatalogueEntry.objects.get(uuid=hub.course).retired

    refused = late.post(reverse("enrol", args=[hub.course]))
    assert refused.status_code == 409 and "takes no new enrolments" in refused.content.decode()
    assert late.get(f"/courses/{hub.course}/").status_code == 404
    assert "0 of 3 lessons done." in early.get(f"/courses/{hub.course}/").content.decode()
    finish_at_home(early, hub.course)
    assert Certificate.objects.count() == 2
    assert Client().get(reverse("verify_certificate", args=[certificate.id])).status_code == 200
    assert hub.pull().applied == 0  # nothing is pulled for a withdrawn course


def test_a_link_only_origin_is_taken_on_its_own_portal(hub: Hub, settings: Any) -> None:
    hub.offer(1, package(hub.course))
    hub.pull()
    federation = settings.PORTAL.federation
    subscribe = replace(federation.subscribe, link_only=("hub",))
    set_portal(settings, federation=replace(federation, subscribe=subscribe))
    learner = Client()
    learner.force_login(make_user("linked"))
    html = learner.get(f"/courses/{hub.course}/").content.decode()
    assert "Take this course on" in html and "Plan the camp" not in html
    assert learner.post(reverse("enrol", args=[hub.course])).status_code == 404
    assert not Enrolment.objects.exists()


def test_a_record_page_seen_again_costs_one_query_however_many_lessons(hub: Hub) -> None:
    """Its lessons are kept rendered and the learner's state kept, as on a course page: what
    is left is finding the course's row."""
    from tests.tenant_portal.test_query_counts import counts, sign_in

    many = [
        {**lessons()[0], "id": f"plan-{n}", "content": {"en": {"title": f"Part {n}"}}}
        for n in range(30)
    ]
    hub.offer(1, package(hub.course, lessons=[*many, *lessons()]))
    hub.pull()
    learner = sign_in(make_user("counted"))
    learner.post(reverse("enrol", args=[hub.course]))
    learner.post(reverse("lesson_done", args=[hub.course, "plan-3"]))
    page = f"/courses/{hub.course}/"
    assert counts(learner, [page]) == {page: 1}
