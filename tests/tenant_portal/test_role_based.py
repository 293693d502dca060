"""Role-based learning (issue 19): an officer's post, the gap to what it needs, and the fewest
courses that close it."""

from __future__ import annotations

import itertools
import logging
import random
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tenant_portal.accounts.backends import KeycloakBackend
from tenant_portal.accounts.models import Profile
from tenant_portal.catalogue.models import (
    CatalogueEntry,
    CatalogueIndexPage,
    EntryCompetency,
    EntryLanguage,
)
from tenant_portal.competencies.models import Post, PostCompetency, SubTheme
from tenant_portal.learning.path import Candidate, Requirement, closes, plan
from tests.tenant_portal.learning import add_course, finish, make_user, prepare_site
from tests.tenant_portal.test_query_counts import counts, sign_in

# --- the path, on hand-built cases -----------------------------------------------------------


def brute_force(requirements: list[Requirement], candidates: list[Candidate]) -> int | None:
    """The fewest candidates closing every open requirement some candidate closes."""
    gaps = [r for r in requirements if r.open]
    coverable = {g.iri for g in gaps if any(closes(c, g) for c in candidates)}
    for size in range(len(candidates) + 1):
        for combo in itertools.combinations(candidates, size):
            if coverable <= {g.iri for g in gaps for c in combo if closes(c, g)}:
                return size
    return None


def course(key: str, teaches: dict[str, int], languages: tuple[str, ...] = ("en",)) -> Candidate:
    return Candidate(key, key, f"/{key}/", languages, 60, teaches)


def test_the_path_is_as_short_as_brute_force_finds_on_random_small_cases() -> None:
    rng = random.Random(19)
    for _case in range(300):
        iris = [f"c{i}" for i in range(rng.randint(1, 6))]
        requirements = [Requirement(i, i, rng.randint(1, 5), rng.randint(0, 5)) for i in iris]
        candidates = [
            course(
                f"k{n}",
                {i: rng.randint(1, 5) for i in rng.sample(iris, rng.randint(1, len(iris)))},
            )
            for n in range(rng.randint(0, 7))
        ]
        steps, uncovered = plan(requirements, candidates, "en")
        assert len(steps) == brute_force(requirements, candidates)
        closed = {g.iri for s in steps for g in s.closes}
        for gap in (r for r in requirements if r.open):
            assert (gap.iri in closed) != (gap in uncovered)
        assert all(r.open for r in uncovered)


def test_the_path_prefers_the_officers_language_lists_foundations_first_and_says_why() -> None:
    requirements = [
        Requirement("drafting", "Drafting", 4, 1),
        Requirement("listening", "Listening", 2, 0),
        Requirement("ethics", "Ethics", 3, 3),  # already reached: no course for it
        Requirement("gem", "GeM procurement", 2, 0),
    ]
    candidates = [
        course("drafting-en", {"drafting": 4}, ("en",)),
        course("drafting-hi", {"drafting": 5}, ("hi", "en")),
        course("listening", {"listening": 2, "ethics": 5}, ("hi",)),
        course("listening-big", {"listening": 1, "drafting": 2}, ("hi",)),  # closes nothing
    ]
    steps, uncovered = plan(requirements, candidates, "hi")
    assert [s.course.key for s in steps] == ["listening", "drafting-hi"]
    assert [[g.name for g in s.closes] for s in steps] == [["Listening"], ["Drafting"]]
    assert all(s.in_language for s in steps)
    assert [g.name for g in uncovered] == ["GeM procurement"]
    assert plan(requirements, candidates, "en")[0][1].course.key == "drafting-en"


# --- an officer's post, on the portal --------------------------------------------------------


def sub_theme(code: str) -> SubTheme:
    return SubTheme.objects.get(code=code)


def make_post(code: str, name: dict[str, str], needs: dict[str, int]) -> Post:
    post = Post.objects.create(code=code, name=name, department_type="district")
    for position, (sub, level) in enumerate(needs.items()):
        PostCompetency.objects.create(
            post=post, sub_theme=sub_theme(sub), level=level, sort_order=position
        )
    return post


def federated_course(slug: str, teaches: dict[str, int], languages: list[str]) -> CatalogueEntry:
    """A course another instance published, as the sync writes it (no page here)."""
    key = uuid.uuid4()
    entry = CatalogueEntry.objects.create(
        uuid=key,
        iri=f"https://bihar.example.org/courses/{key}",
        origin="bihar",
        origin_name="Bihar",
        provider="BIPARD",
        name={"en": f"Course {slug}", "hi": f"पाठ्यक्रम {slug}"},
        languages=languages,
        duration_minutes=45,
        url=f"https://bihar.example.org/courses/{slug}/",
        modified=timezone.now(),
    )
    EntryLanguage.objects.bulk_create(EntryLanguage(entry=entry, code=c) for c in languages)
    EntryCompetency.objects.bulk_create(
        EntryCompetency(entry=entry, sub_theme=sub_theme(s), level=n) for s, n in teaches.items()
    )
    return entry


@pytest.fixture
def catalogue(db: Any) -> CatalogueIndexPage:
    return prepare_site()


@pytest.fixture
def officer(catalogue: CatalogueIndexPage) -> tuple[AbstractUser, Client]:
    """An officer with two certificates: noting and drafting 2, written communication 3."""
    user = make_user("officer", department="health")
    client = sign_in(user)
    finish(client, add_course(catalogue, "one"))
    finish(
        client,
        add_course(
            catalogue,
            "two",
            competencies=[
                {
                    "area": "behavioural",
                    "theme": "communication",
                    "subTheme": "active-listening",
                    "level": 1,
                }
            ],
        ),
    )
    return user, client


BDO = {"en": "Block Development Officer", "hi": "खंड विकास अधिकारी"}
NEEDS = {"noting-and-drafting": 2, "written-communication": 4, "gem-procurement": 2}


@pytest.mark.django_db
def test_an_officer_sees_the_gaps_of_their_post_and_a_path_that_closes_them(
    officer: tuple[AbstractUser, Client], catalogue: CatalogueIndexPage
) -> None:
    _user, client = officer
    make_post("bdo", BDO, NEEDS)
    # The local course closes only procurement; the federated one closes both open gaps.
    add_course(
        catalogue,
        "gem",
        competencies=[
            {
                "area": "functional",
                "theme": "public-procurement",
                "subTheme": "gem-procurement",
                "level": 3,
            }
        ],
    )
    federated_course("both", {"written-communication": 4, "gem-procurement": 2}, ["en", "hi"])
    assert client.post(reverse("choose_post"), {"post": "bdo"}).status_code == 302

    page = client.get(reverse("passbook")).content.decode()
    assert "Your post: Block Development Officer" in page
    rows = page.split('<table class="gap">')[1].split("</table>")[0]
    assert '<tr><th scope="row">Noting and drafting</th><td>2</td><td>2</td></tr>' in rows
    assert '<tr class="open"><th scope="row">Written communication</th><td>3</td><td>4</td>' in rows
    assert (
        '<tr class="open"><th scope="row">Procurement through GeM</th><td>0</td><td>2</td>' in rows
    )
    path = page.split('<ol class="learning-path">')[1].split("</ol>")[0]
    # One course closes both gaps: the federated one, not the local one closing one gap.
    assert path.count("<li><a href=") == 1
    assert 'href="https://bihar.example.org/courses/both/">Course both</a>' in path
    assert "Takes Written communication from level 3 to the 4 your post needs" in path
    assert "Takes Procurement through GeM from level 0 to the 2 your post needs" in path

    client.cookies["django_language"] = "hi"
    hindi = client.get(reverse("passbook")).content.decode()
    assert "खंड विकास अधिकारी" in hindi and "पाठ्यक्रम both" in hindi
    assert "Block Development Officer" not in hindi


@pytest.mark.django_db
def test_the_token_claim_comes_first_and_an_unknown_post_is_ignored_with_a_log_line(
    officer: tuple[AbstractUser, Client], caplog: pytest.LogCaptureFixture
) -> None:
    user, client = officer
    make_post("bdo", BDO, NEEDS)
    make_post("dho", {"en": "District Health Officer"}, {"active-listening": 3})
    client.post(reverse("choose_post"), {"post": "bdo"})
    claims = {"sub": "sub-officer", "roles": [], "groups": ["/departments/health"]}

    # The directory's attribute, as the sign-in and each session re-check apply it.
    KeycloakBackend().update_user(user, {**claims, "post": "dho"})
    page = client.get(reverse("passbook")).content.decode()
    assert "Your post: District Health Officer (set by your directory)" in page
    assert 'name="post"' not in page  # a post the directory sets is not the officer's to choose
    assert '<tr class="open"><th scope="row">Active listening</th><td>1</td><td>3</td>' in page

    with caplog.at_level(logging.WARNING, logger="tenant_portal.learning.path"):
        KeycloakBackend().update_user(user, {**claims, "post": "no-such-post"})
        response = client.get(reverse("passbook"))
    assert response.status_code == 200
    assert "Your post: Block Development Officer" in response.content.decode()
    assert "post 'no-such-post' (from the token) is not a known post; ignored" in caplog.text

    # A directory's title names a post as well as its code does.
    KeycloakBackend().update_user(user, {**claims, "post": "district health officer"})
    assert "Your post: District Health Officer" in client.get(reverse("passbook")).content.decode()

    # A department administrator's assignment comes before the officer's own choice.
    Profile.objects.filter(user=user).update(post_claimed="", post_assigned="dho")
    page = client.get(reverse("passbook")).content.decode()
    assert "Your post: District Health Officer (assigned by your department)" in page


@pytest.mark.django_db
def test_choosing_a_post_takes_only_a_known_one_and_an_empty_choice_clears_it(
    officer: tuple[AbstractUser, Client],
) -> None:
    user, client = officer
    make_post("bdo", BDO, NEEDS)
    Post.objects.create(code="old", name={"en": "Retired post"}, retired=True)
    page = client.get(reverse("passbook")).content.decode()
    assert "Choose your post to see the competencies it needs" in page
    assert '<option value="bdo">Block Development Officer</option>' in page
    assert "Retired post" not in page

    assert client.post(reverse("choose_post"), {"post": "bdo"}).status_code == 302
    for wrong in ("old", "nope", "bdo\x00", "b" * 65):
        response = client.post(reverse("choose_post"), {"post": wrong})
        assert response.status_code == 400
        assert response.content.decode() == "No such post: choose one from the list."
    assert Profile.objects.get(user=user).post_chosen == "bdo"
    assert client.post(reverse("choose_post"), {"post": ""}).status_code == 302
    assert Profile.objects.get(user=user).post_chosen == ""


@pytest.mark.django_db
def test_my_learning_makes_the_same_queries_with_one_course_or_many(
    officer: tuple[AbstractUser, Client], catalogue: CatalogueIndexPage
) -> None:
    _user, client = officer
    make_post("bdo", BDO, NEEDS)
    client.post(reverse("choose_post"), {"post": "bdo"})
    federated_course("first", {"gem-procurement": 2}, ["en"])
    url = reverse("passbook")
    # The profile, certificates, imported credentials, courses in progress, the posts, the
    # post's requirements and the courses teaching them.
    assert counts(client, [url]) == {url: 7}
    for n in range(6):
        federated_course(f"more-{n}", {"written-communication": 4, "gem-procurement": 1}, ["hi"])
        add_course(catalogue, f"local-{n}")
    assert counts(client, [url]) == {url: 7}
    path = client.get(url).content.decode().split('<ol class="learning-path">')[1]
    assert path.count("<li><a href=") == 2 and "Course first" in path and "Course more-" in path


@pytest.mark.django_db
def test_a_department_administrator_assigns_posts_to_their_own_department_only(
    officer: tuple[AbstractUser, Client],
) -> None:
    user, client = officer
    make_post("bdo", BDO, NEEDS)
    admin = sign_in(make_user("mdo", department="health", roles=("mdo_admin",)))
    stranger = make_user("elsewhere", department="education")
    mine = Profile.objects.get(user=user)
    url = reverse("assign_post", args=["health"])

    report = admin.get(reverse("department_report", args=["health"])).content.decode()
    assert f'<option value="{mine.pk}">Sita Verma</option>' in report
    assert '<option value="bdo">Block Development Officer</option>' in report
    assert admin.post(url, {"officer": mine.pk, "post": "bdo"}).status_code == 302
    page = client.get(reverse("passbook")).content.decode()
    assert "Your post: Block Development Officer (assigned by your department)" in page
    assert 'name="post"' not in page  # the officer's own choice gives way to the assignment

    theirs = Profile.objects.get(user=stranger)
    refused = admin.post(url, {"officer": theirs.pk, "post": "bdo"})
    assert refused.status_code == 400
    assert refused.content.decode() == "No such officer in your department."
    assert admin.post(url, {"officer": mine.pk, "post": "nope"}).status_code == 400
    other = reverse("assign_post", args=["education"])
    assert admin.post(other, {"officer": theirs.pk, "post": "bdo"}).status_code == 403
    assert client.post(url, {"officer": mine.pk, "post": ""}).status_code == 403
    assert Profile.objects.get(user=stranger).post_assigned == ""
    assert Profile.objects.get(user=user).post_assigned == "bdo"


@pytest.mark.django_db
def test_publishers_create_a_post_in_the_wagtail_admin_and_a_bad_name_is_refused(
    catalogue: CatalogueIndexPage,
) -> None:
    publisher = sign_in(make_user("pub", roles=("content_publisher",)))
    editor = sign_in(make_user("ed", roles=("content_creator",)))
    add = reverse("wagtailsnippets_competencies_post:add")
    assert editor.get(add).status_code in (302, 403)  # not theirs to change
    form = {
        "code": "bdo",
        "name": '{"en": "Block Development Officer", "hi": "खंड विकास अधिकारी"}',
        "department_type": "rural development",
        "requirements-TOTAL_FORMS": "1",
        "requirements-INITIAL_FORMS": "0",
        "requirements-MIN_NUM_FORMS": "1",
        "requirements-MAX_NUM_FORMS": "1000",
        "requirements-0-sub_theme": str(sub_theme("gem-procurement").pk),
        "requirements-0-level": "2",
        "requirements-0-ORDER": "1",
    }
    refused = publisher.post(add, {**form, "name": '"Block Development Officer"'})
    assert refused.status_code == 200 and not Post.objects.exists()
    assert "Give a language map" in refused.content.decode()
    assert publisher.post(add, form).status_code == 302
    post = Post.objects.get(code="bdo")
    assert str(post) == "Block Development Officer"
    assert [(r.sub_theme.code, r.level) for r in post.requirements.all()] == [
        ("gem-procurement", 2)
    ]


@pytest.mark.django_db
def test_the_department_report_shows_its_own_gaps_by_post_with_small_cells_suppressed(
    officer: tuple[AbstractUser, Client],
) -> None:
    """Health: the officer (noting and drafting 2, written communication 3, active listening 1)
    and six more hold BDO; five hold DHO; two hold a clerk's post. Education's officer with
    BDO counts only in education's report."""
    user, _ = officer
    make_post("bdo", BDO, NEEDS)
    make_post("dho", {"en": "District Health Officer"}, {"active-listening": 3})
    make_post("clerk", {"en": "Clerk"}, {"noting-and-drafting": 1})
    Profile.objects.filter(user=user).update(post_assigned="bdo")
    for post, count in (("bdo", 6), ("dho", 5), ("clerk", 2)):
        for n in range(count):
            other = make_user(f"{post}-{n}", department="health")
            Profile.objects.filter(user=other).update(post_chosen=post)
    stranger = make_user("teacher", department="education")
    Profile.objects.filter(user=stranger).update(post_assigned="bdo")
    admin = sign_in(make_user("mdo", department="health", roles=("mdo_admin",)))

    response = admin.get(reverse("department_report", args=["health"]))
    page = response.content.decode()
    gaps = page.split('<section aria-labelledby="gaps-heading">')[1].split("</section>")[0]
    tables = {
        table.split("<caption>")[1].split(":")[0]: table
        for table in gaps.split('<table class="report post-gaps">')[1:]
    }
    assert list(tables) == ["Block Development Officer", "Clerk", "District Health Officer"]
    bdo, clerk, dho = tables.values()
    # Six below noting and drafting and one at it: the one would follow from the post's seven
    # officers by subtraction, so the seven are not shown.
    assert "number of officers not shown, as it would give away a count under 5" in bdo
    assert '<th scope="row">Noting and drafting</th><td>2</td><td>6</td>' in bdo
    assert '<th scope="row">Written communication</th><td>4</td><td>7</td>' in bdo
    assert '<th scope="row">Procurement through GeM</th><td>2</td><td>7</td>' in bdo
    assert "District Health Officer: 5 officers" in dho
    assert '<th scope="row">Active listening</th><td>3</td><td>5</td>' in dho
    assert "Clerk: fewer than 5 officers" in clerk
    assert '<th scope="row">Noting and drafting</th><td>1</td><td>fewer than 5</td>' in clerk

    # Only the administrator's own department: another's report is refused outright.
    assert admin.get(reverse("department_report", args=["education"])).status_code == 403
    assert sign_in(stranger).get(reverse("department_report", args=["health"])).status_code == 403


@pytest.mark.django_db
def test_a_post_the_hub_publishes_is_read_only_in_the_tenants_admin(
    catalogue: CatalogueIndexPage,
) -> None:
    hubs = make_post("bdo", BDO, {"gem-procurement": 2})
    Post.objects.filter(pk=hubs.pk).update(origin="karmayogi-bharat")
    requirement = hubs.requirements.get()
    publisher = sign_in(make_user("pub", roles=("content_publisher",)))
    edit = reverse("wagtailsnippets_competencies_post:edit", args=[hubs.pk])
    form = {
        "code": "bdo",
        "name": '{"en": "Our own name"}',
        "department_type": "",
        "requirements-TOTAL_FORMS": "1",
        "requirements-INITIAL_FORMS": "1",
        "requirements-MIN_NUM_FORMS": "1",
        "requirements-MAX_NUM_FORMS": "1000",
        "requirements-0-id": str(requirement.pk),
        "requirements-0-sub_theme": str(requirement.sub_theme_id),
        "requirements-0-level": "5",
        "requirements-0-ORDER": "1",
    }
    refused = publisher.post(edit, form)
    assert refused.status_code == 200
    assert "published by the federation&#x27;s hub (karmayogi-bharat)" in refused.content.decode()
    hubs.refresh_from_db()
    assert str(hubs) == "Block Development Officer" and hubs.requirements.get().level == 2
