"""Portable credentials (Open Badges 3.0, VC-JOSE) across two instances with their own databases.

Bihar runs as its own gunicorn process on a free loopback port with its own PostgreSQL
database; it is also the hub here, so its signed member directory is where the test process
(Rajasthan, a tenant) learns which issuers belong to the federation and where their keys are.
Bihar issues credentials; a verifier written below from the standards alone (RFC 7515 JWS,
RFC 7518 ES256, W3C VC-JOSE, Open Badges 3.0, W3C Bitstring Status List), with
``cryptography`` and none of the kit's code, checks them; Rajasthan imports them.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from django.contrib.auth.models import AbstractUser
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from joserfc import jws
from joserfc.jwk import ECKey

from tenant_portal.federation.membership import forget_directory
from tenant_portal.learning import credentials
from tenant_portal.learning.models import Certificate, Credential, ImportedCredential
from tests.postgres import PostgresServer
from tests.tenant_portal.conftest import set_portal
from tests.tenant_portal.federation_env import Instance, new_instance
from tests.tenant_portal.learning import add_course, finish, make_user, prepare_site

pytestmark = pytest.mark.django_db

VC_V2 = "https://www.w3.org/ns/credentials/v2"

# Run on Bihar: for each (username, e-mail) in OFFICERS, an officer with a verified address
# completes a seeded course (every lesson done, through the kit's own completion) and the
# credential of the certificate is printed.
ISSUE = """
import json
from django.contrib.auth import get_user_model
from django.db import transaction
from tenant_portal.accounts.models import Profile
from tenant_portal.catalogue.models import CatalogueEntry
from tenant_portal.learning.content import current_content
from tenant_portal.learning.credentials import credential_for
from tenant_portal.learning.models import Enrolment, LessonDone
from tenant_portal.learning.progress import complete_if_finished
entry = next(
    e for e in CatalogueEntry.objects.order_by("pk")
    if e.competencies and (c := current_content(e.uuid)) is not None and c.lessons
)
issued = []
for username, email in OFFICERS:
    user = get_user_model().objects.create_user(username=username, email=email)
    Profile.objects.create(user=user, subject="sub-" + username, email_verified=True)
    enrolment = Enrolment.objects.create(user=user, entry=entry)
    for lesson in current_content(entry.uuid).lesson_ids:
        LessonDone.objects.create(enrolment=enrolment, lesson=lesson)
    with transaction.atomic():
        certificate = complete_if_finished(enrolment)
    issued.append({"certificate": str(certificate.id), "jws": credential_for(certificate).jws,
                   "course": entry.iri,
                   "levels": sorted(c["level"] for c in entry.competencies)})
print(json.dumps(issued))
"""


@dataclass
class Issued:
    certificate: str
    jws: str
    course: str
    levels: list[int]


class Bihar:
    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.count = 0
        self.issued: dict[str, Issued] = {}

    @property
    def url(self) -> str:
        return self.instance.url

    def issue(self, *emails: str) -> list[Issued]:
        """Credentials Bihar issues to officers with these addresses, in one process."""
        officers = [(f"officer{self.count + n}", email) for n, email in enumerate(emails)]
        self.count += len(emails)
        code = f"OFFICERS = {officers!r}\n{ISSUE}"
        done = self.instance.manage("shell", "--no-imports", "-c", code, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        return [Issued(**item) for item in json.loads(done.stdout.strip().splitlines()[-1])]


# Every test's credentials, issued at once when Bihar starts (each shell costs seconds).
EMAILS = {
    "meera": "Meera.Rao@bihar.example",
    "kiran": "kiran@bihar.example",
    "sunita": "sunita@gov.example",
    "lata": "lata@gov.example",
    "colleague": "colleague@gov.example",
    "lata, revoked": "lata@gov.example",
    "devi": "devi@gov.example",
    "arun": "arun@gov.example",
    "uma": "uma@gov.example",
}


@pytest.fixture(scope="module")
def bihar(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bihar]:
    tmp = tmp_path_factory.mktemp("credentials")
    instance = new_instance(postgres, tmp, "bihar", "127.0.0.1", {})
    instance.env["KARMAYOGI_FEDERATION"] = json.dumps(
        {"code": "bihar", "isHub": True, "hub": "bihar", "peers": [], "members": []}
    )
    try:
        instance.manage("prepare_portal", "-v0")
        instance.manage("seed_courses")
        instance.start()
        bihar = Bihar(instance)
        bihar.issued = dict(zip(EMAILS, bihar.issue(*EMAILS.values()), strict=True))
        yield bihar
    finally:
        instance.kill(signal.SIGTERM)


@pytest.fixture
def rajasthan(bihar: Bihar, settings: Any) -> Bihar:
    """This process as Rajasthan, a tenant of the federation whose hub is Bihar."""
    prepare_site()
    set_portal(
        settings,
        portal_url="http://rajasthan.invalid",
        federation={"code": "rajasthan", "hub": "bihar", "hubUrl": bihar.url, "peers": []},
    )
    forget_directory()
    cache.clear()
    return bihar


def officer(username: str, email: str, *, verified: bool = True) -> AbstractUser:
    user = make_user(username)
    user.email = email
    user.save()
    user.profile.email_verified = verified  # type: ignore[attr-defined]
    user.profile.save()  # type: ignore[attr-defined]
    return user


def signed_in(user: AbstractUser) -> Client:
    client = Client()
    client.force_login(user)
    return client


def upload(client: Client, path: str, token: str) -> Any:
    file = SimpleUploadedFile("credential.jwt", token.encode(), "application/vc+jwt")
    return client.post(path, {"credential": file}, follow=True)


def flash(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- an independent verifier, from the standards alone ------------------------------------------


def b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def es256_verified(token: str, jwks: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, payload) of a compact JWS whose ES256 signature (RFC 7515 §5.2, RFC 7518
    §3.4: R || S over ``header.payload``) verifies with the JWKS key its ``kid`` names."""
    head, body, signature = token.split(".")
    header = json.loads(b64url(head))
    assert header["alg"] == "ES256" and header["typ"] == "vc+jwt"
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    assert (jwk["kty"], jwk["crv"]) == ("EC", "P-256")
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(b64url(jwk["x"]), "big"),
        int.from_bytes(b64url(jwk["y"]), "big"),
        ec.SECP256R1(),
    )
    raw = b64url(signature)
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    numbers.public_key().verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    return header, json.loads(b64url(body))


def independently_verified(token: str, email: str) -> dict[str, Any]:
    """The credential, once a third party that knows only the standards and the issuer's URL
    finds it signed by the issuer, naming ``email``, and not revoked."""
    _head, body, _sig = token.split(".")
    issuer = json.loads(b64url(body))["issuer"]["id"]
    jwks = httpx.get(f"{issuer}/federation/v1/keys").json()
    _header, credential = es256_verified(token, jwks)
    assert credential["@context"][0] == VC_V2
    assert {"VerifiableCredential", "OpenBadgeCredential"} <= set(credential["type"])
    (identity,) = credential["credentialSubject"]["identifier"]
    assert identity["type"] == "IdentityObject" and identity["hashed"] is True
    assert identity["identityType"] == "emailAddress"
    algorithm, digest = identity["identityHash"].split("$")
    assert algorithm == "sha256"
    assert hashlib.sha256((email.lower() + identity["salt"]).encode()).hexdigest() == digest
    status = credential["credentialStatus"]
    assert status["type"] == "BitstringStatusListEntry"
    assert status["statusPurpose"] == "revocation"
    listed = httpx.get(status["statusListCredential"])
    assert listed.headers["content-type"] == "application/vc+jwt"
    _h, status_list = es256_verified(listed.text, jwks)
    assert "BitstringStatusListCredential" in status_list["type"]
    encoded = status_list["credentialSubject"]["encodedList"]
    assert encoded[0] == "u"  # multibase base64url, no padding
    bits = gzip.decompress(b64url(encoded[1:]))
    assert len(bits) >= 16 * 1024
    index = int(status["statusListIndex"])
    credential["revoked"] = bool(bits[index // 8] & (0x80 >> (index % 8)))
    return credential


# --- issuing, downloading, verifying -------------------------------------------------------------


def test_a_credential_issued_on_bihar_verifies_by_the_standards_alone(rajasthan: Bihar) -> None:
    issued = rajasthan.issued["meera"]
    credential = independently_verified(issued.jws, "meera.rao@bihar.example")
    assert credential["revoked"] is False
    assert credential["issuer"]["id"] == rajasthan.url
    achievement = credential["credentialSubject"]["achievement"]
    assert achievement["id"] == issued.course and achievement["type"] == ["Achievement"]
    levels = [int(r["rubricCriterionLevel"][0]["level"]) for r in achievement["resultDescription"]]
    assert sorted(levels) == issued.levels
    assert all(a["targetUrl"].startswith("https://") for a in achievement["alignment"])
    assert "meera" not in json.dumps(credential).lower()  # named by a salted hash only
    # Tampering with one character of the payload breaks the signature for anyone.
    head, body, sig = issued.jws.split(".")
    payload = json.loads(b64url(body))
    payload["credentialSubject"]["achievement"]["name"] = "Something else"
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidSignature):
        independently_verified(f"{head}.{forged}.{sig}", "meera.rao@bihar.example")


def test_my_learning_offers_the_credential_of_each_certificate(settings: Any) -> None:
    course = add_course(prepare_site(), "notes")
    user = officer("asha", "Asha@example.org")
    client = signed_in(user)
    key = course.translation_key
    finish(client, course)
    certificate = Certificate.objects.get()
    page = client.get(reverse("passbook")).content.decode()
    link = reverse("download_credential", args=[certificate.id])
    assert link in page
    response = client.get(link)
    assert response["Content-Type"] == "application/vc+jwt"
    assert "attachment" in response["Content-Disposition"]
    token = response.content.decode()
    credential = credentials.verify(token)  # this instance's own
    assert credential.payload["credentialSubject"]["achievement"]["id"].endswith(str(key))
    assert credentials.matches(credential.identity, "asha@example.org")
    assert client.get(link).content.decode() == token  # signed once, kept
    # Another officer cannot fetch it.
    assert signed_in(officer("ravi", "ravi@example.org")).get(link).status_code == 404


def test_no_credential_names_an_unverified_address(settings: Any) -> None:
    course = add_course(prepare_site(), "notes")
    client = signed_in(officer("asha", "asha@example.org", verified=False))
    finish(client, course)
    certificate = Certificate.objects.get()
    link = reverse("download_credential", args=[certificate.id])
    assert link not in client.get(reverse("passbook")).content.decode()
    response = client.get(link, follow=True)
    assert "not verified" in " ".join(flash(response))
    assert not Credential.objects.exists()


def test_the_public_page_says_whether_an_uploaded_credential_is_valid(rajasthan: Bihar) -> None:
    issued = rajasthan.issued["kiran"]
    client = Client()
    page = upload(client, reverse("verify_credential"), issued.jws)
    assert page.status_code == 200
    assert "This credential is valid" in page.content.decode()
    head, body, sig = issued.jws.split(".")
    payload = json.loads(b64url(body))
    payload["validFrom"] = "2020-01-01T00:00:00Z"  # backdated
    changed = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    refused = upload(client, reverse("verify_credential"), f"{head}.{changed}.{sig}")
    assert refused.status_code == 422
    shown = refused.content.decode()
    assert "This credential is not valid:" in shown and "signature does not verify" in shown


# --- importing into another instance ----------------------------------------------------------


def test_rajasthan_imports_bihars_credential_into_the_officers_passbook(rajasthan: Bihar) -> None:
    issued = rajasthan.issued["sunita"]
    user = officer("sunita", "Sunita@Gov.example")
    client = signed_in(user)
    response = upload(client, reverse("import_credential"), issued.jws)
    assert any("Added to your passbook" in m for m in flash(response)), flash(response)
    row = ImportedCredential.objects.get(user=user)
    assert row.issuer_id == rajasthan.url and row.course_iri == issued.course
    assert sorted(c["level"] for c in row.competencies) == issued.levels
    page = response.content.decode()
    assert "issued by bihar portal" in page  # the passbook marks where it came from
    # Uploading it again changes nothing.
    upload(client, reverse("import_credential"), issued.jws)
    assert ImportedCredential.objects.count() == 1


def test_the_hub_imports_a_members_credential_and_not_once_the_member_is_removed(
    bihar: Bihar, settings: Any
) -> None:
    """This process as the hub, Bihar one of its declared members."""
    prepare_site()
    member = {"code": "bihar", "name": "Bihar", "tenantType": "state", "portalUrl": bihar.url}
    member["keysUrl"] = f"{bihar.url}/federation/v1/keys"
    hub = {"code": "centre", "isHub": True, "hub": "centre", "peers": []}
    set_portal(settings, portal_url="http://centre.invalid", federation={**hub, "members": []})
    client = signed_in(officer("uma", "uma@gov.example"))
    refused = flash(upload(client, reverse("import_credential"), bihar.issued["uma"].jws))
    assert "is not a member of this federation" in refused[0]
    set_portal(settings, federation={**hub, "members": [member]})
    response = upload(client, reverse("import_credential"), bihar.issued["uma"].jws)
    assert any("Added to your passbook" in m for m in flash(response)), flash(response)
    assert ImportedCredential.objects.get().issuer_name == "bihar portal"


def forged(issuer: str, typ: str = "vc+jwt") -> str:
    """A well-formed credential signed by a key no member publishes, claiming ``issuer``."""
    key = ECKey.generate_key("P-256", private=True)
    payload = {
        "@context": credentials.CONTEXTS,
        "id": "urn:uuid:00000000-0000-4000-8000-000000000000",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": {"id": issuer, "type": ["Profile"], "name": "Elsewhere"},
    }
    header = {"alg": "ES256", "kid": "stranger", "typ": typ}
    return jws.serialize_compact(header, json.dumps(payload).encode(), key)


def test_each_refusal_is_one_line_and_adds_nothing(rajasthan: Bihar) -> None:
    mine = rajasthan.issued["lata"]
    colleague = rajasthan.issued["colleague"]
    revoked = rajasthan.issued["lata, revoked"]
    rajasthan.instance.manage("revoke_certificate", revoked.certificate)
    head, body, sig = mine.jws.split(".")
    payload = json.loads(b64url(body))
    payload["credentialSubject"]["result"] = []
    changed = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    client = signed_in(officer("lata", "lata@gov.example"))
    cases = {
        "tampered": (f"{head}.{changed}.{sig}", "signature does not verify"),
        "another officer's": (colleague.jws, "issued to another officer"),
        "unknown issuer": (forged("http://127.0.0.1:9"), "is not a member of this federation"),
        "revoked": (revoked.jws, "was revoked by bihar portal"),
        "malformed": ("not a credential <at all>", "malformed credential"),
        "not a credential": (forged(rajasthan.url, typ="JWT"), "malformed"),
    }
    for case, (token, expected) in cases.items():
        messages = flash(upload(client, reverse("import_credential"), token))
        assert len(messages) == 1 and "\n" not in messages[0], case
        assert messages[0].startswith("The credential was not added: "), case
        assert expected in messages[0], (case, messages)
    assert not ImportedCredential.objects.exists()
    with pytest.raises(credentials.CredentialError) as refused:
        credentials.verify(forged(rajasthan.url))
    assert refused.value.reason == "tampered"  # a member's URL, but not its key


def test_a_credential_revoked_after_import_is_marked_at_the_next_check(rajasthan: Bihar) -> None:
    issued = rajasthan.issued["devi"]
    user = officer("devi", "devi@gov.example")
    client = signed_in(user)
    upload(client, reverse("import_credential"), issued.jws)
    row = ImportedCredential.objects.get(user=user)
    call_command("check_credentials")
    row.refresh_from_db()
    assert row.revoked is None
    passbook = client.get(reverse("passbook")).content.decode()
    assert "issued by bihar portal" in passbook and "revoked by its issuer" not in passbook

    rajasthan.instance.manage("revoke_certificate", issued.certificate)
    call_command("check_credentials")
    row.refresh_from_db()
    assert row.revoked is not None
    passbook = client.get(reverse("passbook")).content.decode()
    assert "revoked by its issuer" in passbook
    assert "(issued by bihar portal)" not in passbook  # its levels left the passbook
    assert independently_verified(issued.jws, "devi@gov.example")["revoked"] is True


def test_a_key_rotated_after_issue_still_verifies(rajasthan: Bihar) -> None:
    issued = rajasthan.issued["arun"]
    old_kid = json.loads(b64url(issued.jws.split(".")[0]))["kid"]
    rajasthan.instance.manage("federation_rotate_key")
    (later,) = rajasthan.issue("arun2@gov.example")
    assert json.loads(b64url(later.jws.split(".")[0]))["kid"] != old_kid
    kids = {k["kid"] for k in httpx.get(f"{rajasthan.url}/federation/v1/keys").json()["keys"]}
    assert old_kid in kids
    assert independently_verified(issued.jws, "arun@gov.example")["revoked"] is False
    user = officer("arun", "arun@gov.example")
    response = upload(signed_in(user), reverse("import_credential"), issued.jws)
    assert any("Added to your passbook" in m for m in flash(response)), flash(response)


def test_deleting_a_certificate_revokes_its_credential(settings: Any) -> None:
    course = add_course(prepare_site(), "notes")
    client = signed_in(officer("asha", "asha@example.org"))
    finish(client, course)
    certificate = Certificate.objects.get()
    token = client.get(reverse("download_credential", args=[certificate.id])).content.decode()
    assert credentials.verify(token)
    Certificate.objects.filter(pk=certificate.pk).delete()
    with pytest.raises(credentials.CredentialError) as refused:
        credentials.verify(token)
    assert refused.value.reason == "revoked", str(refused.value)
    listed = Client().get(reverse("credential_status_list", args=[0]))
    assert listed["Content-Type"] == "application/vc+jwt"


def _part(data: Any) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


GOOD_HEADER = {"alg": "ES256", "kid": "k", "typ": "vc+jwt"}
GOOD_BODY = {
    "@context": credentials.CONTEXTS,
    "type": ["VerifiableCredential", "OpenBadgeCredential"],
    "issuer": {"id": "http://127.0.0.1:9"},
}
HOSTILE = {
    "alg none": f"{_part({**GOOD_HEADER, 'alg': 'none'})}.{_part(GOOD_BODY)}.",
    "HS256": f"{_part({**GOOD_HEADER, 'alg': 'HS256'})}.{_part(GOOD_BODY)}.c2ln",
    "kid a list": f"{_part({**GOOD_HEADER, 'kid': ['k']})}.{_part(GOOD_BODY)}.c2ln",
    "payload a list": f"{_part(GOOD_HEADER)}.{_part([1, 2])}.c2ln",
    "payload not JSON": f"{_part(GOOD_HEADER)}.{_part(b'{nope')}.c2ln",
    "context a string": f"{_part(GOOD_HEADER)}.{_part({**GOOD_BODY, '@context': 'x'})}.c2ln",
    "no type": f"{_part(GOOD_HEADER)}.{_part({**GOOD_BODY, 'type': 'x'})}.c2ln",
    "issuer a string": f"{_part(GOOD_HEADER)}.{_part({**GOOD_BODY, 'issuer': 'x'})}.c2ln",
    "issuer id a number": f"{_part(GOOD_HEADER)}.{_part({**GOOD_BODY, 'issuer': {'id': 7}})}.c",
    "deeply nested": f"{_part(GOOD_HEADER)}.{_part(b'[' * 20_000 + b']' * 20_000)}.c2ln",
    "over 64 KB": "e" * 70_000,
    "control characters": "\x00\x01.\x1f.\x7f",
    "four parts": "a.b.c.d",
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_credential_is_refused_as_malformed_in_one_line(case: str) -> None:
    with pytest.raises(credentials.CredentialError) as refused:
        credentials.verify(HOSTILE[case])
    assert refused.value.reason == "malformed"
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 200


def test_a_retired_key_stays_published_while_a_credential_names_it(settings: Any) -> None:
    from tenant_portal.federation.models import Change
    from tenant_portal.federation.signing import published_keys, rotate_key

    course = add_course(prepare_site(), "notes")
    client = signed_in(officer("asha", "asha@example.org"))
    finish(client, course)
    certificate = Certificate.objects.get()
    token = client.get(reverse("download_credential", args=[certificate.id])).content.decode()
    old = Credential.objects.get().kid
    Change.objects.all().delete()  # the feed names the key no more: only the credential does
    new = rotate_key().kid
    assert {k["kid"] for k in published_keys()["keys"]} == {old, new}
    assert credentials.verify(token).issuer_id == settings.PORTAL.portal_url
    Credential.objects.all().delete()
    assert {k["kid"] for k in published_keys()["keys"]} == {new}
