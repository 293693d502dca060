"""Home pages that help (issue 19, item 4): signed out, what the instance is, featured courses,
the competency areas as ways in and counts; signed in, where to carry on, the next course on the
officer's path and recent certificates. Query counts stay constant as the catalogue and the
learner's rows grow; anonymous home pages come from the page cache."""

from __future__ import annotations

import re
import uuid
from importlib import import_module
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from tenant_portal.accounts.models import Profile
from tenant_portal.catalogue.models import CatalogueEntry, CatalogueIndexPage
from tenant_portal.learning.models import Certificate, Enrolment
from tests.tenant_portal.conftest import set_portal
from tests.tenant_portal.learning import PROVIDER, add_course, finish, make_user, prepare_site
from tests.tenant_portal.test_query_counts import sign_in
from tests.tenant_portal.test_role_based import federated_course, make_post

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalogue() -> CatalogueIndexPage:
    return prepare_site()


def main_text(response: Any) -> str:
    """The page's ``<main>``, tags stripped and spaces folded: what a reader sees."""
    html = response.content.decode()
    main = html[html.index("<main") : html.index("</main>")]
    return " ".join(re.sub(r"<[^>]+>", " ", main).split())


def queries(client: Client, url: str = "/") -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


def warm(client: Client) -> None:
    """The first visits keep the site's lookups, the served page and the public part."""
    for _visit in range(2):
        client.get("/")


def grow(user: AbstractUser, how_many: int) -> None:
    """``how_many`` more federated courses, each enrolled in and half of them certified."""
    for n in range(how_many):
        entry = federated_course(f"grown-{uuid.uuid4().hex[:6]}", {"active-listening": 1}, ["en"])
        enrolment = Enrolment.objects.create(user=user, entry=entry)
        if n % 2:
            enrolment.completed = timezone.now()
            enrolment.save()
            Certificate.objects.create(
                enrolment=enrolment,
                learner_name="Sita Verma",
                course_name=entry.name,
                course_iri=entry.iri,
                competencies=[],
                issuer="Karmayogi",
                issued=timezone.now(),
            )


def test_signed_out_home_says_what_it_is_features_courses_and_opens_the_areas(
    catalogue: CatalogueIndexPage,
) -> None:
    add_course(catalogue, "plain")
    federated_course("picked", {"noting-and-drafting": 2}, ["en", "hi"])
    CatalogueEntry.objects.filter(name__en="Course picked").update(featured=True)
    federated_course("hidden", {"noting-and-drafting": 2}, ["en"])
    CatalogueEntry.objects.filter(name__en="Course hidden").update(hidden=True)

    response = Client().get("/")
    text = main_text(response)
    assert "is where civil servants learn" in text
    # The editor's featured course first, the hidden one nowhere; counts of what is listed.
    assert text.index("Featured courses") < text.index("Course picked")
    assert text.index("Course picked") < text.index("Noting and drafting plain")
    assert "Course hidden" not in text
    assert "Courses 2 Providers 2 Portals they come from 2" in text
    # The three competency areas, each a way into the catalogue filtered by it.
    html = response.content.decode()
    for area in ("behavioural", "functional", "domain"):
        assert f'href="/courses/?area={area}"' in html
    assert re.search(r"Functional\s*</a>\s*<span[^>]*>2 courses", html)
    filtered = Client().get("/courses/?area=functional")
    assert "2 courses" in main_text(filtered)
    assert "Sign in to enrol" in text


def test_anonymous_home_is_served_from_the_page_cache_until_the_catalogue_changes(
    catalogue: CatalogueIndexPage, django_capture_on_commit_callbacks: Any
) -> None:
    assert Client().get("/").get("X-Page-Cache") == "miss"
    with CaptureQueriesContext(connection) as captured:
        cached = Client().get("/")
    assert cached.get("X-Page-Cache") == "hit" and len(captured) == 0
    with django_capture_on_commit_callbacks(execute=True):
        add_course(catalogue, "fresh")  # publishing moves the cache's generation
    fresh = Client().get("/")
    assert fresh.get("X-Page-Cache") == "miss"
    assert "Noting and drafting fresh" in main_text(fresh)
    hindi = Client(headers={"accept-language": "hi"}).get("/")
    assert hindi.get("X-Page-Cache") == "miss" and "टिप्पण और प्रारूपण fresh" in main_text(hindi)


def test_signed_in_home_carries_on_suggests_the_next_course_and_lists_certificates(
    catalogue: CatalogueIndexPage,
) -> None:
    keycloaks = ("default-roles-bihar", "offline_access", "uma_authorization")
    user = make_user("officer", department="health", roles=("mdo_admin", "learner", *keycloaks))
    client = sign_in(user)
    finish(client, add_course(catalogue, "done"))  # noting and drafting 2, written comm. 3
    started = add_course(catalogue, "started")
    client.post(f"/learn/{started.translation_key}/enrol/")
    make_post("bdo", {"en": "Block Development Officer"}, {"noting-and-drafting": 4})
    federated_course("advanced", {"noting-and-drafting": 4}, ["en"])

    no_post = main_text(client.get("/"))
    assert "Continue where you left off Noting and drafting started" in no_post
    assert "Choose your post to see the competencies it needs" in no_post
    assert "Recent certificates Noting and drafting done" in no_post
    # The account's roles are the kit's, not Keycloak's own.
    assert "Roles learner, mdo_admin Find courses" in no_post

    Profile.objects.filter(user=user).update(post_chosen="bdo")
    text = main_text(client.get("/"))
    assert "Your post: Block Development Officer" in text
    assert "Next on your path Your post: Block Development Officer Course advanced" in text
    assert "Takes Noting and drafting from level 2 to the 4 your post needs" in text
    # The signed-in page is the learner's own: never stored for others.
    assert client.get("/").get("X-Page-Cache") is None


def test_home_query_counts_stay_constant_as_courses_and_enrolments_grow(
    catalogue: CatalogueIndexPage,
) -> None:
    user = make_user("officer", department="health")
    make_post("bdo", {"en": "Block Development Officer"}, {"active-listening": 2})
    Profile.objects.filter(user=user).update(post_chosen="bdo")
    client = sign_in(user)
    grow(user, 2)
    warm(client)
    small = queries(client)
    grow(user, 30)
    cache.clear()  # the catalogue changed: its public part is read again once
    warm(client)
    assert queries(client) == small
    # The profile, courses in progress, certificates, imported credentials, the posts, and
    # the post's requirements and the courses teaching them.
    assert small == 7
    # Signed out, a miss reads the same few rows however large the catalogue is.
    cache.clear()
    before = queries(Client())
    grow(user, 30)
    cache.clear()
    assert queries(Client()) == before


def test_courses_published_before_provider_maps_get_theirs_from_their_translations(
    catalogue: CatalogueIndexPage,
) -> None:
    from django.apps import apps

    fill = import_module("tenant_portal.catalogue.migrations.0007_fill_provider_name")
    page = add_course(catalogue, "older")
    CatalogueEntry.objects.filter(uuid=page.translation_key).update(provider_name={})
    fill.fill_provider_names(apps, None)
    entry = CatalogueEntry.objects.get(uuid=page.translation_key)
    assert entry.provider_name == PROVIDER
    with translation.override("hi"):
        assert entry.provider_label == PROVIDER["hi"]


def test_a_course_naming_no_provider_takes_the_specs_provider_names(
    catalogue: CatalogueIndexPage, settings: Any
) -> None:
    from tenant_portal.catalogue.models import CoursePage
    from tenant_portal.catalogue.services import index_course
    from tenant_portal.federation.records import record_of

    names = {"en": "Government of Bihar", "hi": "बिहार सरकार"}
    set_portal(settings, branding={"provider_name": names})
    settings.LANGUAGE_CODE = "hi"
    page = add_course(catalogue, "unnamed")
    CoursePage.objects.filter(translation_key=page.translation_key).update(provider="")
    entry = index_course(page.translation_key)
    assert entry is not None
    # The plain provider is the first language's name; the record carries the whole map.
    assert entry.provider == "बिहार सरकार" and entry.provider_name == names
    assert record_of(entry)["provider"]["nameMap"] == names
    with translation.override("en"):
        assert entry.provider_label == "Government of Bihar"
