"""Portable credentials: a certificate as an Open Badges 3.0 credential, secured as VC-JOSE.

A credential is a W3C Verifiable Credential (data model 2.0) of type ``OpenBadgeCredential``,
signed as a compact JWS (ES256, ``typ: vc+jwt``) with the instance's federation signing key
(``federation.signing``): the same keys, the same keys URL, the same rotation. Its issuer's
``id`` is the issuing portal's URL; its keys are at ``<issuer id>/federation/v1/keys``, and
the JWS header's ``kid`` names the one that signed it. The officer is named only by a salted
SHA-256 of their verified e-mail address (an OB 3.0 ``IdentityObject``, ``hashed: true``).

Revocation is a W3C Bitstring Status List: ``credentialStatus`` points at bit
``statusListIndex`` of the list credential at ``/credentials/status/<n>``, which the issuer
signs the same way. ``docs/credentials.md`` documents the format and how to verify one.

:func:`verify` is what this instance believes of a credential: structure, issuer (this
instance or a federation member, never a URL the credential chooses for itself), signature
against the issuer's published keys, and status. Each refusal is a :class:`CredentialError`
with one line and a ``reason`` (malformed, unknown-issuer, tampered, revoked, other-officer).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tenant_portal.competencies.models import localized
from tenant_portal.federation import documents
from tenant_portal.federation.membership import (
    DirectoryError,
    directory_entries,
    keys_url_of,
    members,
)
from tenant_portal.federation.signing import ALGORITHM, SignatureError, fetch_keys, published_keys
from tenant_portal.learning.models import Certificate, Credential, ImportedCredential

MEDIA_TYPE = "vc+jwt"
CONTENT_TYPE = "application/vc+jwt"
CONTEXTS = [
    "https://www.w3.org/ns/credentials/v2",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
]
STATUS_BITS = 131_072  # 16 KB, the minimum the Bitstring Status List asks for (herd privacy)
MAX_CREDENTIAL = 64 * 1024
MAX_STATUS_LIST = 256 * 1024
FRAMEWORK = "Karmayogi Competency Model"
TIMEOUT = 10.0


class CredentialError(ValueError):
    """A credential this instance does not accept; ``str()`` is one line saying why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# --- issuing -----------------------------------------------------------------------------------


def portal_url() -> str:
    return str(settings.PORTAL.portal_url).rstrip("/")


def identity_hash(email: str, salt: str) -> str:
    """OB 3.0 ``IdentityHash``: ``sha256$`` and the hex SHA-256 of the address (trimmed and
    lower-cased) with the salt appended, both UTF-8."""
    digest = hashlib.sha256((email.strip().lower() + salt).encode()).hexdigest()
    return f"sha256${digest}"


def status_list_url(number: int) -> str:
    return f"{portal_url()}{reverse('credential_status_list', args=[number])}"


def _status_of(index: int) -> tuple[int, int]:
    """(list number, bit in it) of a status index."""
    return index // STATUS_BITS, index % STATUS_BITS


def _default_language() -> str:
    return str(settings.LANGUAGE_CODE).split("-")[0]


def credential_payload(
    certificate: Certificate, credential: Credential, email: str
) -> dict[str, Any]:
    """The OB 3.0 credential of ``certificate`` for the officer whose address is ``email``."""
    number, _bit = _status_of(credential.status_index)
    list_url = status_list_url(number)
    salt = secrets.token_hex(16)
    with translation.override(_default_language()):
        title = localized(certificate.course_name)
        competencies = [
            {
                "iri": c["iri"],
                "name": localized(c.get("name") or {}),
                "level": int(c["level"]),
            }
            for c in certificate.competencies
        ]
    iri = certificate.course_iri
    descriptions = [
        {
            "id": f"{iri}#competency-{n}",
            "type": ["ResultDescription"],
            "name": c["name"],
            "resultType": "RubricCriterionLevel",
            "alignment": [_alignment(c)],
            "rubricCriterionLevel": [
                {
                    "id": f"{iri}#competency-{n}-level-{c['level']}",
                    "type": ["RubricCriterionLevel"],
                    "name": f"Level {c['level']}",
                    "level": str(c["level"]),
                }
            ],
        }
        for n, c in enumerate(competencies, start=1)
    ]
    issued = certificate.issued.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "@context": CONTEXTS,
        "id": f"urn:uuid:{credential.uuid}",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": title,
        "issuer": {
            "id": portal_url(),
            "type": ["Profile"],
            "name": settings.PORTAL.site_name,
            "otherIdentifier": [
                {
                    "type": "IdentifierEntry",
                    "identifier": settings.PORTAL.federation_code,
                    "identifierType": "identifier",
                }
            ],
        },
        "validFrom": issued,
        "credentialSubject": {
            "type": ["AchievementSubject"],
            "identifier": [
                {
                    "type": "IdentityObject",
                    "identityHash": identity_hash(email, salt),
                    "identityType": "emailAddress",
                    "hashed": True,
                    "salt": salt,
                }
            ],
            "achievement": {
                "id": iri,
                "type": ["Achievement"],
                "achievementType": "Course",
                "name": title,
                "description": f"Completion of the course “{title}”.",
                "criteria": {"narrative": "Every lesson of the course done, every quiz passed."},
                "alignment": [_alignment(c) for c in competencies],
                "resultDescription": descriptions,
            },
            "result": [
                {
                    "type": ["Result"],
                    "resultDescription": d["id"],
                    "achievedLevel": d["rubricCriterionLevel"][0]["id"],
                }
                for d in descriptions
            ],
        },
        "credentialStatus": {
            "id": f"{list_url}#{credential.status_index}",
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": str(credential.status_index),
            "statusListCredential": list_url,
        },
    }


def _alignment(competency: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": ["Alignment"],
        "targetName": competency["name"],
        "targetUrl": competency["iri"],
        "targetType": "ceasn:Competency",
        "targetFramework": FRAMEWORK,
    }


class NotVerified(Exception):
    """The officer's e-mail address is not verified: no credential names it."""


@transaction.atomic
def credential_for(certificate: Certificate) -> Credential:
    """The signed credential of ``certificate``, made on first asking and kept."""
    # The certificate's row is locked, so two first downloads at once make one credential.
    Certificate.objects.select_for_update().filter(pk=certificate.pk).first()
    found = Credential.objects.filter(certificate=certificate).first()
    if found is not None:
        return found
    user = certificate.enrolment.user
    profile = getattr(user, "profile", None)
    if profile is None or not profile.email_verified or not user.email:
        raise NotVerified
    credential = Credential.objects.create(certificate=certificate, kid="", jws="")
    payload = credential_payload(certificate, credential, user.email)
    token = documents.sign(payload, MEDIA_TYPE)
    credential.kid = str(jws.extract_compact(token.encode()).protected["kid"])
    credential.jws = token
    credential.save(update_fields=["kid", "jws"])
    return credential


@transaction.atomic
def revoke(certificate: Certificate) -> Credential | None:
    """Revoke the certificate's credential (its bit in the status list is set); None when it
    never had one."""
    found = Credential.objects.select_for_update().filter(certificate=certificate).first()
    if found is not None and found.revoked is None:
        found.revoked = timezone.now()
        found.save(update_fields=["revoked"])
    return found


def revoke_on_delete(sender: Any, instance: Certificate, **kwargs: Any) -> None:
    """A deleted certificate's credential is revoked (its row stays, so its bit stays set)."""
    revoke(instance)


def status_list_payload(number: int) -> dict[str, Any]:
    """The Bitstring Status List credential ``number``: bit i is set when credential
    ``number * STATUS_BITS + i`` issued here is revoked."""
    bits = bytearray(STATUS_BITS // 8)
    low, high = number * STATUS_BITS, (number + 1) * STATUS_BITS
    for pk in Credential.objects.filter(
        revoked__isnull=False, pk__gte=low, pk__lt=high
    ).values_list("pk", flat=True):
        bit = pk - low
        bits[bit // 8] |= 0x80 >> (bit % 8)  # index 0 is the leftmost bit of the first byte
    encoded = base64.urlsafe_b64encode(gzip.compress(bytes(bits), mtime=0)).rstrip(b"=")
    url = status_list_url(number)
    return {
        "@context": CONTEXTS[:1],
        "id": url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": {"id": portal_url(), "type": ["Profile"], "name": settings.PORTAL.site_name},
        "validFrom": timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "credentialSubject": {
            "id": f"{url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": "revocation",
            "encodedList": "u" + encoded.decode(),
        },
    }


def status_list_token(number: int) -> str:
    return documents.sign(status_list_payload(number), MEDIA_TYPE)


# --- verifying ---------------------------------------------------------------------------------


@dataclass
class Verified:
    payload: dict[str, Any]
    issuer_id: str
    issuer_name: str
    issued: datetime
    identity: dict[str, Any]
    status_list: str
    status_index: int
    own: bool


def _malformed(what: str) -> CredentialError:
    return CredentialError("malformed", f"malformed credential: {what}")


def _string(value: Any, what: str, limit: int = 500) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise _malformed(f"{what} is missing or not a string")
    return value


def _parse_time(value: Any, what: str) -> datetime:
    text = _string(value, what, 64)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _malformed(f"{what} is not a date and time") from None
    if moment.tzinfo is None:
        raise _malformed(f"{what} has no time zone")
    return moment


def read(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(protected header, payload) of a credential, unverified, once its shape is sound."""
    token = token.strip()
    if not token:
        raise _malformed("the file is empty")
    if len(token) > MAX_CREDENTIAL:
        raise _malformed(f"it is over {MAX_CREDENTIAL // 1024} KB")
    try:
        header = documents.header(token, MEDIA_TYPE, "credential")
        payload = documents.unverified_payload(token, "credential")
    except documents.DocumentError as exc:
        raise _malformed(str(exc)) from None
    context = payload.get("@context")
    if not isinstance(context, list) or context[:1] != CONTEXTS[:1]:
        raise _malformed("it is not a W3C Verifiable Credential 2.0")
    kinds = payload.get("type")
    if not isinstance(kinds, list) or "OpenBadgeCredential" not in kinds:
        raise _malformed("it is not an OpenBadgeCredential")
    return header, payload


def _issuer(payload: dict[str, Any]) -> tuple[str, str]:
    issuer = payload.get("issuer")
    if not isinstance(issuer, dict):
        raise _malformed("issuer is missing")
    issuer_id = _string(issuer.get("id"), "issuer.id").rstrip("/")
    return issuer_id, _string(issuer.get("name", issuer_id), "issuer.name", 300)


def issuer_keys_url(issuer_id: str) -> str | None:
    """The keys URL this instance trusts for ``issuer_id``: its own, or that of a federation
    member whose portal URL it is (on the hub its members; on a tenant the hub's signed
    directory). A suspended member's credentials still verify (they were true when issued); a
    removed member's do not. None for an issuer outside the federation."""
    if issuer_id == portal_url():
        return keys_url_of(issuer_id)
    config = settings.PORTAL.federation
    if config.is_hub:
        for member in members():
            if member.portal_url.rstrip("/") == issuer_id:
                return str(member.keys_url)
        return None
    try:
        listed = directory_entries()
    except DirectoryError as exc:
        raise CredentialError("unknown-issuer", documents.one_line(str(exc))) from None
    for entry in listed.values():
        if str(entry.get("portalUrl", "")).rstrip("/") == issuer_id:
            return str(entry["keysUrl"])
    return None


def _keys(issuer_id: str, keys_url: str, own: bool, *, refresh: bool = False) -> KeySet:
    if own:
        return KeySet.import_key_set(published_keys())  # type: ignore[arg-type]
    try:
        return fetch_keys(keys_url, refresh=refresh)
    except SignatureError:
        raise CredentialError(
            "unknown-issuer", f"the keys of the issuer {issuer_id[:200]} cannot be read"
        ) from None


def _check_signature(token: str, kid: str, keys: KeySet, what: str) -> None:
    if not any(k.kid == kid for k in keys.keys):
        raise CredentialError(
            "tampered", f"{what} is not signed by a key its issuer publishes (kid {kid[:40]!r})"
        )
    try:
        jws.deserialize_compact(token.encode(), keys, algorithms=[ALGORITHM])
    except (JoseError, ValueError):
        raise CredentialError(
            "tampered", f"{what}'s signature does not verify: it was changed after it was issued"
        ) from None


def verify(token: str) -> Verified:
    """The credential in ``token`` once this instance trusts it (see the module's doc)."""
    header, payload = read(token)
    issuer_id, issuer_name = _issuer(payload)
    own = issuer_id == portal_url()
    keys_url = issuer_keys_url(issuer_id)
    if keys_url is None:
        raise CredentialError(
            "unknown-issuer",
            f"the issuer {issuer_id[:200]} is not a member of this federation",
        )
    kid = str(header["kid"])
    keys = _keys(issuer_id, keys_url, own)
    if not own and not any(k.kid == kid for k in keys.keys):
        keys = _keys(issuer_id, keys_url, own, refresh=True)
    _check_signature(token.strip(), kid, keys, "the credential")
    # Signed by its issuer: the rest of the payload is the issuer's word.
    issued = _parse_time(payload.get("validFrom"), "validFrom")
    if issued > timezone.now() + timedelta(minutes=5):
        raise _malformed("validFrom is in the future")
    subject = payload.get("credentialSubject")
    if not isinstance(subject, dict) or not isinstance(subject.get("achievement"), dict):
        raise _malformed("credentialSubject.achievement is missing")
    identity = next(
        (
            i
            for i in subject.get("identifier") or []
            if isinstance(i, dict) and i.get("type") == "IdentityObject"
        ),
        None,
    )
    if identity is None or identity.get("identityType") != "emailAddress":
        raise _malformed("credentialSubject.identifier holds no e-mail IdentityObject")
    status = payload.get("credentialStatus")
    if not isinstance(status, dict) or status.get("type") != "BitstringStatusListEntry":
        raise _malformed("credentialStatus is not a BitstringStatusListEntry")
    list_url = _string(status.get("statusListCredential"), "statusListCredential")
    if not list_url.startswith(f"{issuer_id}/"):
        raise _malformed("its status list is not on its issuer's site")
    index_text = _string(status.get("statusListIndex"), "statusListIndex", 12)
    if not index_text.isdigit():
        raise _malformed("statusListIndex is not a whole number")
    verified = Verified(
        payload, issuer_id, issuer_name, issued, identity, list_url, int(index_text), own
    )
    if is_revoked(verified, keys):
        raise CredentialError("revoked", f"this credential was revoked by {issuer_name[:200]}")
    return verified


def is_revoked(verified: Verified, keys: KeySet | None = None) -> bool:
    """Whether the credential's bit is set in its issuer's status list (read now)."""
    if keys is None:
        keys_url = issuer_keys_url(verified.issuer_id)
        if keys_url is None:
            raise CredentialError(
                "unknown-issuer", f"the issuer {verified.issuer_id[:200]} is no longer a member"
            )
        keys = _keys(verified.issuer_id, keys_url, verified.own)
    token = _status_list(verified.status_list, verified.own)
    header, payload = _read_status_list(token, verified.status_list)
    _check_signature(token, str(header.get("kid", "")), keys, "the status list")
    subject = payload.get("credentialSubject")
    if not isinstance(subject, dict) or subject.get("statusPurpose") != "revocation":
        raise _status_error(verified.status_list, "it is not a revocation list")
    encoded = subject.get("encodedList")
    try:
        if not isinstance(encoded, str) or not encoded.startswith("u"):
            raise ValueError("not multibase base64url")
        data = encoded[1:]
        bits = gzip.decompress(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    except (ValueError, OSError, EOFError):
        raise _status_error(verified.status_list, "its encodedList does not decode") from None
    index = verified.status_index
    if index >= len(bits) * 8:
        raise _status_error(verified.status_list, "it is shorter than the credential's index")
    return bool(bits[index // 8] & (0x80 >> (index % 8)))


def _status_error(url: str, why: str) -> CredentialError:
    return CredentialError("malformed", f"the status list {url[:200]} cannot be used: {why}")


def _status_list(url: str, own: bool) -> str:
    if own:
        tail = url.removeprefix(portal_url())
        prefix = reverse("credential_status_list", args=[0]).removesuffix("0/")
        number = tail.removeprefix(prefix).removesuffix("/")
        if not tail.startswith(prefix) or not number.isdigit() or len(number) > 7:
            raise _status_error(url, "no such list is published here")
        return status_list_token(int(number))
    try:
        with httpx.stream("GET", url, timeout=TIMEOUT, follow_redirects=False) as response:
            response.raise_for_status()
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_STATUS_LIST:
                    raise _status_error(url, f"it is over {MAX_STATUS_LIST // 1024} KB")
    except httpx.HTTPError as exc:
        raise _status_error(url, f"it cannot be read ({exc.__class__.__name__})") from None
    return body.decode("ascii", errors="replace").strip()


def _read_status_list(token: str, url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        header = documents.header(token, MEDIA_TYPE, "status list")
        payload = documents.unverified_payload(token, "status list")
    except documents.DocumentError as exc:
        raise _status_error(url, str(exc)) from None
    if "BitstringStatusListCredential" not in (payload.get("type") or []):
        raise _status_error(url, "it is not a BitstringStatusListCredential")
    if payload.get("id") != url:
        raise _status_error(url, "it is another list")
    return header, payload


# --- importing ---------------------------------------------------------------------------------

MAX_COMPETENCIES = 50


def _competencies(achievement: dict[str, Any]) -> list[dict[str, Any]]:
    """What the achievement certifies, as :attr:`Certificate.competencies` keeps it: each
    result description's competency (its alignment) and level, with the theme and area this
    instance's KCM gives the term (the issuer's name for it when the term is unknown here)."""
    from tenant_portal.competencies.models import SubTheme

    listed = achievement.get("resultDescription") or []
    if not isinstance(listed, list) or len(listed) > MAX_COMPETENCIES:
        raise _malformed("achievement.resultDescription is not a list of competencies")
    found: list[dict[str, Any]] = []
    for item in listed:
        try:
            iri = _string(item["alignment"][0]["targetUrl"], "a competency's targetUrl", 400)
            name = _string(item["name"], "a competency's name", 300)
            level = int(_string(item["rubricCriterionLevel"][0]["level"], "a level", 2))
        except (KeyError, IndexError, TypeError, ValueError):
            raise _malformed("a competency of the achievement has no IRI, name or level") from None
        if not 1 <= level <= 5:
            raise _malformed("a competency's level is not 1 to 5")
        found.append({"iri": iri, "name": {"und": name}, "level": level})
    terms = {
        t.iri: t
        for t in SubTheme.objects.filter(iri__in=[c["iri"] for c in found]).select_related(
            "theme__area"
        )
    }
    for item in found:
        term = terms.get(item["iri"])
        if term is not None:
            item.update(name=term.name, theme=term.theme.name, area=term.theme.area.name)
        else:
            item.update(theme={"und": FRAMEWORK}, area={"und": FRAMEWORK})
    return found


def matches(identity: dict[str, Any], email: str) -> bool:
    """Whether an OB 3.0 ``IdentityObject`` names the address ``email``."""
    claimed = str(identity.get("identityHash", ""))
    if identity.get("hashed") is True:
        expected = identity_hash(email, str(identity.get("salt") or ""))
        return hmac.compare_digest(expected.lower().encode(), claimed.lower().encode())
    return hmac.compare_digest(email.strip().lower().encode(), claimed.strip().lower().encode())


def import_credential(user: Any, token: str) -> ImportedCredential:
    """Verify ``token`` and add it to ``user``'s passbook (one statement: all or nothing, and
    no transaction held open while the issuer's keys and status list are read);
    CredentialError says why not."""
    verified = verify(token)
    if verified.own:
        raise CredentialError(
            "issued-here", "this credential was issued here: its certificate is already yours"
        )
    profile = getattr(user, "profile", None)
    if profile is None or not profile.email_verified or not user.email:
        raise CredentialError(
            "other-officer",
            "your e-mail address is not verified here, so no credential can be matched to you",
        )
    if not matches(verified.identity, user.email):
        raise CredentialError(
            "other-officer",
            "this credential was issued to another officer: it does not name your e-mail address",
        )
    payload = verified.payload
    achievement = payload["credentialSubject"]["achievement"]
    iri = _string(achievement.get("id"), "achievement.id", 400)
    name = _string(achievement.get("name"), "achievement.name", 300)
    competencies = _competencies(achievement)
    credential_id = _string(payload.get("id"), "id", 200)
    row, _created = ImportedCredential.objects.update_or_create(
        user=user,
        credential_id=credential_id,
        defaults={
            "issuer_id": verified.issuer_id,
            "issuer_name": verified.issuer_name,
            "course_name": {"und": name},
            "course_iri": iri,
            "competencies": competencies,
            "issued": verified.issued,
            "status_list": verified.status_list,
            "status_index": verified.status_index,
            "jws": token.strip(),
            "checked": timezone.now(),
            "revoked": None,
        },
    )
    return row


def check_imported(row: ImportedCredential) -> bool:
    """Read the status of an imported credential again; True when it is (now) revoked."""
    verified = Verified(
        payload={},
        issuer_id=row.issuer_id,
        issuer_name=row.issuer_name,
        issued=row.issued,
        identity={},
        status_list=row.status_list,
        status_index=row.status_index,
        own=False,
    )
    revoked = is_revoked(verified)
    now = timezone.now()
    fields = {"checked": now}
    if revoked and row.revoked is None:
        fields["revoked"] = now
    ImportedCredential.objects.filter(pk=row.pk).update(**fields)
    return revoked
