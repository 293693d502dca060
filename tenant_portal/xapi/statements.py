"""The statements an instance sends: a course completed, and the voiding of one.

Nothing in a statement names a person. The actor is an ``account`` on this portal whose name
is a pseudonym: an HMAC-SHA256 of the user's primary key under this instance's secret,
truncated to 32 hex digits. The same learner always gets the same pseudonym here, so the hub
can count distinct learners; without the secret nobody can go back from it to the account,
and the hub never holds the secret.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils.crypto import salted_hmac

VERSION = "1.0.3"
COMPLETED = "http://adlnet.gov/expapi/verbs/completed"
VOIDED = "http://adlnet.gov/expapi/verbs/voided"
COURSE = "http://adlnet.gov/expapi/activities/course"
AREAS_EXTENSION = "https://karmayogi.example/xapi/extensions/competency-areas"
# Fixed for good: statement ids are uuid5 of this namespace and "<tenant>:certificate:<id>",
# so a retry, or a rebuilt outbox row, is the very same statement.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://karmayogi.example/xapi/statements")
PSEUDONYM_SALT = "karmayogi.xapi.pseudonym"
PSEUDONYM_HEX = 32


def tenant_code() -> str:
    return settings.PORTAL.federation_code


def pseudonym(user_pk: int | str) -> str:
    """The learner's stable pseudonym on this instance (not reversible without its secret).

    The key is ``KARMAYOGI_XAPI_PSEUDONYM_KEY`` when set, else ``SECRET_KEY``: rotating the
    key gives every learner a new pseudonym, and the hub would count them twice.
    """
    secret = settings.PORTAL.xapi_pseudonym_key or settings.SECRET_KEY
    digest = salted_hmac(PSEUDONYM_SALT, str(user_pk), secret=secret, algorithm="sha256")
    return digest.hexdigest()[:PSEUDONYM_HEX]


def statement_id(kind: str, certificate: uuid.UUID | str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{tenant_code()}:{kind}:{certificate}")


def area_iris(competencies: list[dict[str, Any]]) -> list[str]:
    """The competency areas of a course, as IRIs, from its competency snapshot.

    KCM IRIs are minted from the codes on their path (``<framework>/<area>/<theme>/<sub>``),
    so a sub-theme's area is its IRI less the last two segments.
    """
    areas = {str(c["iri"]).rstrip("/").rsplit("/", 2)[0] for c in competencies if c.get("iri")}
    return sorted(areas)


def actor(user_pk: int | str) -> dict[str, Any]:
    return {
        "objectType": "Agent",
        "account": {"homePage": settings.PORTAL.portal_url, "name": pseudonym(user_pk)},
    }


def completion(
    *,
    certificate: uuid.UUID | str,
    user_pk: int | str,
    course_iri: str,
    course_name: dict[str, str],
    competencies: list[dict[str, Any]],
    completed: datetime,
) -> dict[str, Any]:
    """The statement that a learner completed a course; only pseudonymous fields."""
    return {
        "id": str(statement_id("certificate", certificate)),
        "actor": actor(user_pk),
        "verb": {"id": COMPLETED, "display": {"en-US": "completed"}},
        "object": {
            "objectType": "Activity",
            "id": course_iri,
            "definition": {"type": COURSE, "name": dict(course_name)},
        },
        "result": {"completion": True},
        "context": {
            "platform": tenant_code(),
            "extensions": {AREAS_EXTENSION: area_iris(competencies)},
        },
        "timestamp": completed.isoformat(),
    }


def voiding(
    *, certificate: uuid.UUID | str, original: dict[str, Any], when: datetime
) -> dict[str, Any]:
    """The statement that voids ``original`` (the certificate was revoked or its learner's
    account deleted); its actor is the original's pseudonymous account."""
    return {
        "id": str(statement_id("void", certificate)),
        "actor": original["actor"],
        "verb": {"id": VOIDED, "display": {"en-US": "voided"}},
        "object": {"objectType": "StatementRef", "id": original["id"]},
        "context": {"platform": tenant_code()},
        "timestamp": when.isoformat(),
    }
