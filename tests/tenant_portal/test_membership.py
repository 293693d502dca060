"""The hub's members: every feed and xAPI call is checked against them at each request (tokens
of the real hub realm), the signed member directory, and suspending, resuming and removing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from joserfc import jws
from joserfc.jwk import KeySet

from infra.targets.local.keycloak import LocalKeycloak
from tenant_portal.catalogue.models import CatalogueEntry
from tenant_portal.federation.auth import Unauthorized
from tenant_portal.federation.changes import append
from tenant_portal.federation.membership import require_member
from tenant_portal.federation.models import Change, Member
from tenant_portal.federation.signing import published_keys
from tenant_portal.federation.sync import peers
from tests.tenant_portal.conftest import set_portal
from tests.tenant_portal.federation_env import Realms, hub_realms

pytestmark = pytest.mark.django_db

XAPI = {"X-Experience-API-Version": "1.0.3"}


@pytest.fixture(scope="module")
def realms(keycloak: LocalKeycloak) -> Iterator[Realms]:
    with hub_realms(keycloak, "bihar", "rajasthan") as realms:
        yield realms


def declared(code: str, *, publish: bool = True) -> dict[str, Any]:
    return {
        "code": code,
        "name": f"{code} Karmayogi",
        "tenantType": "state",
        "portalUrl": f"https://{code}.example.org",
        "keysUrl": f"https://{code}.example.org/federation/v1/keys",
        "publish": publish,
    }


@pytest.fixture
def hub(settings: Any, realms: Realms) -> Realms:
    """This process as the hub; Bihar is declared, Rajasthan is not a member."""
    set_portal(
        settings,
        tenant=realms.hub,
        federation={
            "isHub": True,
            "hub": realms.hub,
            "hubIssuer": realms.issuer,
            "peers": [],
            "members": [declared(realms.realm("bihar"))],
        },
    )
    return realms


def feed(token: str) -> Any:
    return Client().get("/federation/v1/changes", headers={"authorization": f"Bearer {token}"})


def xapi(token: str) -> Any:
    headers = {"authorization": f"Bearer {token}", **XAPI}
    return Client().get("/xapi/statements", headers=headers)


def member(*args: str) -> None:
    call_command("federation_member", *args)


def test_a_suspended_member_is_refused_at_its_next_call_and_resume_restores(hub: Realms) -> None:
    bihar = hub.realm("bihar")
    assert feed(hub.token("bihar")).status_code == 200
    assert xapi(hub.token("bihar")).status_code == 200
    row = Member.objects.get(code=bihar)
    assert (row.source, row.admitted_by, row.status) == ("spec", "spec", "active")

    member("suspend", bihar, "--by", "ops")
    for answer in (feed(hub.token("bihar")), xapi(hub.token("bihar"))):  # fresh tokens
        assert answer.status_code == 401
        assert answer.json()["error"] == f"the membership of {bihar} is suspended"

    member("resume", bihar)
    assert feed(hub.token("bihar")).status_code == 200
    assert xapi(hub.token("bihar")).status_code == 200


def test_a_caller_that_is_not_a_member_is_refused_and_the_hub_itself_passes(hub: Realms) -> None:
    rajasthan = hub.realm("rajasthan")
    for answer in (feed(hub.token("rajasthan")), xapi(hub.token("rajasthan"))):
        assert answer.status_code == 401
        assert answer.json()["error"] == f"{rajasthan} is not a member of this federation"
    assert feed(hub.token("hub")).status_code == 200


def test_a_tenant_does_not_check_membership(settings: Any, realms: Realms) -> None:
    set_portal(
        settings,
        federation={"isHub": False, "hub": realms.hub, "hubIssuer": realms.issuer},
    )
    assert feed(realms.token("rajasthan")).status_code == 200
    assert not Member.objects.exists()


def test_a_declared_member_follows_the_settings_but_keeps_its_status(
    hub: Realms, settings: Any
) -> None:
    bihar = hub.realm("bihar")
    member("suspend", bihar)
    moved = {**declared(bihar), "keysUrl": "https://keys.bihar.example/federation/v1/keys"}
    set_portal(settings, federation={"isHub": True, "members": [moved]})
    call_command("federation_members")
    row = Member.objects.get(code=bihar)
    assert row.keys_url == moved["keysUrl"] and row.status == "suspended"


def test_a_tenant_whose_spec_left_the_hubs_folder_is_a_member_no_more(
    hub: Realms, settings: Any
) -> None:
    """After `tenant remove`, the hub neither pulls the tenant nor takes its calls."""
    bihar = hub.realm("bihar")
    call_command("federation_members")
    assert Member.objects.filter(code=bihar).exists()
    set_portal(settings, federation={"isHub": True, "members": []})
    call_command("federation_members")
    assert not Member.objects.filter(code=bihar).exists()
    with pytest.raises(Unauthorized, match="not a member"):
        require_member(bihar)


def read_directory(response: Any) -> dict[str, Any]:
    assert response.status_code == 200
    assert response["Content-Type"] == "application/jose"
    assert response["Cache-Control"] == "public, max-age=30"
    token = response.content.decode()
    assert jws.extract_compact(token.encode()).protected["typ"] == "karmayogi-directory+jws"
    verified = jws.deserialize_compact(token, KeySet.import_key_set(published_keys()))
    return dict(json.loads(verified.payload))


def test_the_directory_is_signed_by_the_hub_and_lists_its_members(
    hub: Realms, settings: Any
) -> None:
    bihar = hub.realm("bihar")
    Member.objects.create(
        code="goa",
        name="Goa",
        portal_url="https://goa.example.org",
        keys_url="https://goa.example.org/federation/v1/keys",
        source="admitted",
        admitted_by="ops",
    )
    member("suspend", "goa")
    directory = read_directory(Client().get("/federation/v1/members"))
    assert directory["type"] == "karmayogi-member-directory" and directory["version"] == 1
    assert directory["hub"] == hub.hub
    listed = {m["code"]: m for m in directory["members"]}
    assert set(listed) == {hub.hub, bihar, "goa"}
    assert listed[hub.hub]["keysUrl"] == f"{settings.PORTAL.portal_url}/federation/v1/keys"
    assert listed[bihar] == {
        "code": bihar,
        "name": f"{bihar} Karmayogi",
        "tenantType": "state",
        "portalUrl": f"https://{bihar}.example.org",
        "keysUrl": f"https://{bihar}.example.org/federation/v1/keys",
        "status": "active",
        "publish": True,
    }
    assert listed["goa"]["status"] == "suspended"

    member("remove", "goa")
    listed = {m["code"] for m in read_directory(Client().get("/federation/v1/members"))["members"]}
    assert "goa" not in listed


def test_the_directory_is_the_hubs_only(settings: Any) -> None:
    set_portal(settings, federation={"isHub": False})
    assert Client().get("/federation/v1/members").status_code == 404


def course(origin: str, *, withdrawn: bool = False) -> CatalogueEntry:
    course_id = uuid.uuid4()
    append(
        course=course_id,
        origin=origin,
        kind=Change.TOMBSTONE if withdrawn else Change.UPSERT,
        version=1,
        kid="",
        jws="x",
    )
    return CatalogueEntry.objects.create(
        uuid=course_id,
        iri=f"https://{origin}.example.org/courses/{course_id}",
        origin=origin,
        origin_name=origin,
        provider=origin,
        name={"en": "Noting"},
        languages=["en"],
        duration_minutes=60,
        competencies=[],
        url=f"https://{origin}.example.org/courses/x/",
        modified=timezone.now(),
        retired=withdrawn,
    )


def test_suspending_with_withdrawn_courses_and_resuming_brings_them_back(hub: Realms) -> None:
    bihar = hub.realm("bihar")
    listed, withdrawn = course(bihar), course(bihar, withdrawn=True)
    other = course("goa")
    member("suspend", bihar)
    listed.refresh_from_db()
    assert not listed.retired  # without the flag its courses stay listed

    member("resume", bihar)
    member("suspend", bihar, "--withdraw-courses")
    listed.refresh_from_db()
    assert listed.retired and Member.objects.get(code=bihar).courses_withdrawn
    assert [p.code for p in peers()] == []  # a suspended member is not pulled

    member("resume", bihar)
    for entry in (listed, withdrawn, other):
        entry.refresh_from_db()
    assert not listed.retired and withdrawn.retired and not other.retired
    assert [p.code for p in peers()] == [bihar]


def test_removing_an_admitted_member_retires_its_courses(hub: Realms) -> None:
    Member.objects.create(
        code="goa",
        name="Goa",
        portal_url="https://goa.example.org",
        keys_url="https://goa.example.org/federation/v1/keys",
        source="admitted",
        admitted_by="ops",
    )
    entry = course("goa")
    member("remove", "goa", "--by", "ops")
    entry.refresh_from_db()
    assert entry.retired and not Member.objects.filter(code="goa").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("suspend", "nowhere"), "nowhere is not a member of this federation"),
        (("remove", "BIHAR"), "is declared by the deployment's spec"),
    ],
)
def test_member_changes_are_refused_in_one_line(
    hub: Realms, args: tuple[str, ...], message: str
) -> None:
    if args[1] == "BIHAR":
        args = (args[0], hub.realm("bihar"))
    call_command("federation_members")  # the declared member is recorded
    before = list(Member.objects.values_list("code", "status", "changed_at"))
    with pytest.raises(CommandError, match=message) as refused:
        member(*args)
    assert "\n" not in str(refused.value)
    assert list(Member.objects.values_list("code", "status", "changed_at")) == before


def test_members_are_listed(hub: Realms) -> None:
    from io import StringIO

    out = StringIO()
    call_command("federation_members", "--json", stdout=out)
    (row,) = json.loads(out.getvalue())
    assert row["code"] == hub.realm("bihar") and row["source"] == "spec"
    assert row["keysUrl"].endswith("/federation/v1/keys")
