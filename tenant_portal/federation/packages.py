"""Content packages: a course's lessons and quizzes, travelling beside its record (issue 17).

A package (JSON Schema ``schemas/course-package-v1.json``, documented in
``docs/federation.md``) carries a course's modules, lessons and quizzes in every language its
origin has, and lists the files its lessons use with their size, media type and SHA-256. The
origin signs it with the key that signs its records, and serves it, and the files, only to
federation clients (the feed's token rules). Instances pull only the hub: the hub pulls each
publishing member's packages and keeps a verified copy of every file; a member pulls from the
hub and serves its own copies to its learners.

A pulled package is checked whole before anything of it is written: its signature under the
origin's keys, the schema, that it is the package of the course asked for, of its origin, and
not older than the one held, that every quiz question has a right answer, that lesson text
holds only the rich text a course page shows (no script, no event handler, no ``javascript:``
link), and that each file's bytes have the listed size (within the portal's upload limit) and
SHA-256. A package that fails is quarantined with its reason (:class:`QuarantinedPackage`) and
the course keeps its previous version; one that passes becomes the course's new content
version (``learning.content``) in one transaction with the held package and files.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import tempfile
import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.urls import reverse

from tenant_portal.catalogue.models import CatalogueEntry
from tenant_portal.federation.membership import origin_keys_url
from tenant_portal.federation.models import HeldFile, HeldPackage, QuarantinedPackage
from tenant_portal.federation.schemas import FederationSchema
from tenant_portal.federation.signing import SignatureError, sign, verify
from tenant_portal.learning.content import CourseContent, LessonContent, current_content, store

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "course-package-v1.json"
SCHEMA_ID = "https://karmayogi.example/schemas/course-package/v1.json"
MAX_PACKAGE_BYTES = 2 * 1024 * 1024
TIMEOUT = httpx.Timeout(10.0, read=60.0)
CHUNK = 64 * 1024


class PackageError(ValueError):
    """A package that may not be applied; the message is the quarantine reason."""


class PackageUnavailable(Exception):
    """The peer has no package for the course (yet): nothing to quarantine."""


# --- the schema -------------------------------------------------------------------------------


SCHEMA = FederationSchema(SCHEMA_PATH)


def validate(package: Any) -> None:
    """Return if ``package`` is a course package v1; :class:`PackageError` saying where and
    why otherwise (worded like a refused record's, ``federation.schemas``)."""
    problem = SCHEMA.problem(package, "(package)")
    if problem is not None:
        raise PackageError(f"schema: {problem}")


# --- lesson text ------------------------------------------------------------------------------

ALLOWED_TAGS = {"p", "h3", "h4", "b", "strong", "i", "em", "ol", "ul", "li", "br", "a"}
SAFE_SCHEMES = ("http", "https", "mailto")


class _Allowlist(HTMLParser):
    """Finds the first thing in rich text that a course page's rich text never holds."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refused: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.refused:
            return
        if tag not in ALLOWED_TAGS:
            self.refused = f"<{tag}> is not allowed in lesson text"
            return
        for name, value in attrs:
            if tag == "a" and name == "href":
                scheme = urlsplit((value or "").strip()).scheme.lower()
                if scheme not in SAFE_SCHEMES:
                    self.refused = f"a link to {scheme or 'a relative address'!r} in lesson text"
                    return
            elif not (tag == "a" and name in ("rel", "title")):
                self.refused = f"the attribute {name[:40]!r} is not allowed in lesson text"
                return

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_comment(self, data: str) -> None:
        self.refused = self.refused or "a comment in lesson text"

    def handle_pi(self, data: str) -> None:
        self.refused = self.refused or "a processing instruction in lesson text"

    def unknown_decl(self, data: str) -> None:
        self.refused = self.refused or "a declaration in lesson text"


def rich_text_problem(html: str) -> str | None:
    """Why ``html`` is not rich text a course page shows, or None."""
    parser = _Allowlist()
    parser.feed(html)
    parser.close()
    return parser.refused


def check_content(package: dict[str, Any]) -> None:
    """What the schema cannot say: quizzes have right answers, lesson text is inert, and every
    file a lesson names is listed."""
    listed = {item["sha256"] for item in package["files"]}
    for lesson in package["lessons"]:
        for language, value in lesson["content"].items():
            where = f"lesson {lesson['id']} ({language})"
            for name in ("body", "transcript"):
                problem = rich_text_problem(value.get(name, ""))
                if problem:
                    raise PackageError(f"{where}: {problem}")
            for number, question in enumerate(value.get("questions", []), start=1):
                if not any(choice["correct"] for choice in question["choices"]):
                    raise PackageError(f"{where}: question {number} has no correct answer")
            if value.get("file") and value["file"] not in listed:
                raise PackageError(f"{where}: its file is not listed in the package")


# --- the origin's package ---------------------------------------------------------------------

_RELATIVE_HREF = re.compile(r'href="/')


def _local_documents(content: CourseContent) -> dict[int, Any]:
    from wagtail.documents import get_document_model

    ids = {
        value["document"]["id"]
        for lesson in content.lessons
        for value in lesson.content.values()
        if lesson.kind == "document" and value.get("document") and value["document"].get("id")
    }
    return get_document_model().objects.in_bulk(list(ids)) if ids else {}


def _file_facts(document: Any) -> dict[str, Any]:
    """A document's file as a package lists it; its hash is read once per stored file (kept
    under the file's name, size and Wagtail's own hash of it, which change with the file)."""
    from django.core.cache import cache

    key = (
        f"package-file:{document.pk}:{document.file.name}:{document.file_size}:{document.file_hash}"
    )
    key = f"package-file:{hashlib.sha256(key.encode()).hexdigest()}"
    found: dict[str, Any] | None = cache.get(key)
    if found is None:
        found = _read_facts(document)
        cache.set(key, found, None)
    return found


def _read_facts(document: Any) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    with document.file.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    name = os.path.basename(document.file.name)
    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return {"sha256": digest.hexdigest(), "name": name, "mediaType": media, "size": size}


def _exported(kind: str, value: dict[str, Any], files: dict[int, dict[str, Any]]) -> dict[str, Any]:
    from wagtail.rich_text import expand_db_html

    base = settings.PORTAL.portal_url
    out: dict[str, Any] = {"title": value["title"]}
    for name in ("body", "transcript"):
        if value.get(name):
            out[name] = _RELATIVE_HREF.sub(f'href="{base}/', expand_db_html(value[name]))
    if value.get("description"):
        out["description"] = value["description"]
    if kind in ("video", "link"):
        out["url"] = value["url"]
    if kind == "document" and value.get("document"):
        out["file"] = files[value["document"]["id"]]["sha256"]
    if kind == "quiz":
        out |= {
            "passMark": value["pass_mark"],
            "maxAttempts": value["max_attempts"],
            "questions": value["questions"],
        }
    return out


def package_of(entry: CatalogueEntry) -> dict[str, Any] | None:
    """The package of a course this instance originates (its current content), or None."""
    if not entry.is_local or entry.internal or entry.retired:
        return None
    content = current_content(entry.uuid)
    if content is None or not content.lessons:
        return None
    documents = _local_documents(content)
    files = {pk: _file_facts(document) for pk, document in documents.items()}
    lessons = []
    for lesson in content.lessons:
        values = {
            language: _exported(lesson.kind, value, files)
            for language, value in lesson.content.items()
            if lesson.kind != "document"
            or (value.get("document") and value["document"].get("id") in files)
        }
        if values:
            lessons.append(
                {"id": lesson.id, "kind": lesson.kind, "module": lesson.module, "content": values}
            )
    unique = {facts["sha256"]: facts for facts in files.values()}
    return {
        "schemaVersion": SCHEMA_ID,
        "course": entry.iri,
        "origin": entry.origin,
        "version": entry.version,
        "languages": list(content.languages),
        "lessons": lessons,
        "files": list(unique.values()),
    }


def signed_package(entry: CatalogueEntry) -> str | None:
    """The package this instance serves for ``entry``: its own course's, signed now, or (on the
    hub) the held copy of a member's, as its origin signed it."""
    if entry.is_local:
        package = package_of(entry)
        return sign(package)[1] if package is not None else None
    if settings.PORTAL.federation.is_hub and not entry.retired:
        held = HeldPackage.objects.filter(entry=entry).values_list("jws", flat=True).first()
        return held
    return None


def package_file(entry: CatalogueEntry, sha256: str) -> tuple[Any, str, int] | None:
    """(an open file, media type, size) of the file ``sha256`` of the package served for
    ``entry``, or None when that package lists no such file."""
    if entry.is_local:
        package = package_of(entry)
        if package is None:
            return None
        content = current_content(entry.uuid)
        documents = _local_documents(content) if content else {}
        for document in documents.values():
            facts = _file_facts(document)
            if facts["sha256"] == sha256:
                return document.file.open("rb"), facts["mediaType"], facts["size"]
        return None
    if not settings.PORTAL.federation.is_hub:
        return None
    held = HeldPackage.objects.filter(entry=entry).first()
    if held is None or sha256 not in {f["sha256"] for f in held.package["files"]}:
        return None
    found = HeldFile.objects.filter(sha256=sha256).first()
    if found is None:
        return None
    return found.file.open("rb"), found.media_type, found.size


# --- pulling ----------------------------------------------------------------------------------


@dataclass
class PullResult:
    peer: str
    applied: int = 0
    quarantined: int = 0
    unavailable: int = 0
    # Courses the peer answered with an error (a 5xx on the package or one of its files): not
    # quarantined, since nothing wrong arrived; pulled again next round.
    failed: list[str] = field(default_factory=list)


def size_limit() -> int:
    return int(settings.PORTAL.max_upload_mb) * 1024 * 1024


def wanted(code: str) -> list[CatalogueEntry]:
    """The courses whose package is to be pulled from peer ``code``: on the hub, that
    member's; on a member (which pulls only the hub), every course from elsewhere. Those held
    at their record's version, or quarantined at it, are left alone."""
    entries = CatalogueEntry.objects.filter(page__isnull=True, retired=False).exclude(
        origin=settings.PORTAL.tenant
    )
    if settings.PORTAL.federation.is_hub:
        entries = entries.filter(origin=code)
    held = dict(HeldPackage.objects.values_list("entry_id", "version"))
    refused = set(QuarantinedPackage.objects.filter(peer=code).values_list("uuid", "version"))
    return [
        entry
        for entry in entries.order_by("pk")
        if held.get(entry.pk, 0) < entry.version and (entry.uuid, entry.version) not in refused
    ]


def _get(client: httpx.Client, url: str, token: str, limit: int, what: str) -> bytes:
    """The body at ``url``, at most ``limit`` bytes (read as it streams, never whole first)."""
    headers = {"Authorization": f"Bearer {token}"}
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 404:
            raise PackageUnavailable(what)
        if response.status_code != 200:
            response.read()
            raise httpx.HTTPStatusError(
                f"{what}: answered {response.status_code}",
                request=response.request,
                response=response,
            )
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > limit:
                raise PackageError(f"{what} is over {limit} bytes")
    return bytes(body)


def _check(entry: CatalogueEntry, token: str) -> dict[str, Any]:
    keys_url = origin_keys_url(entry.origin)
    if not keys_url:
        raise PackageError(f"unknown origin {entry.origin[:64]!r}")
    try:
        package = verify(token, keys_url)
    except SignatureError as exc:
        raise PackageError(f"signature: {exc}") from None
    validate(package)
    if package["course"] != entry.iri:
        raise PackageError(f"the package is for another course ({package['course'][-36:]})")
    if package["origin"] != entry.origin:
        raise PackageError("the package names another origin than the course record")
    held = HeldPackage.objects.filter(entry=entry).values_list("version", flat=True).first()
    if held is not None and package["version"] < held:
        raise PackageError(f"replays version {package['version']}; version {held} is held")
    check_content(package)
    limit = size_limit()
    for item in package["files"]:
        if item["size"] > limit:
            raise PackageError(f"file {item['name']} is over the limit of {limit} bytes")
    return package


def _fetch_files(
    client: httpx.Client, base: str, token: str, package: dict[str, Any], folder: Path
) -> dict[str, Path]:
    """The package's files not yet held, fetched into ``folder`` and checked."""
    fetched: dict[str, Path] = {}
    have = set(
        HeldFile.objects.filter(sha256__in=[f["sha256"] for f in package["files"]]).values_list(
            "sha256", flat=True
        )
    )
    for item in package["files"]:
        sha = item["sha256"]
        if sha in have or sha in fetched:
            continue
        what = f"file {item['name']}"
        try:
            body = _get(client, f"{base}/files/{sha}", token, item["size"], what)
        except PackageUnavailable:
            raise PackageError(f"{what} is not served") from None
        except PackageError:
            raise PackageError(f"{what} is larger than its listed {item['size']} bytes") from None
        if len(body) != item["size"]:
            raise PackageError(f"{what} has {len(body)} bytes, not its listed {item['size']}")
        if hashlib.sha256(body).hexdigest() != sha:
            raise PackageError(f"{what}: its bytes do not match its SHA-256")
        path = folder / sha
        path.write_bytes(body)
        fetched[sha] = path
    return fetched


def content_of(package: dict[str, Any]) -> CourseContent:
    """The content a package gives the course, its documents served from this instance's own
    copies."""
    files = {item["sha256"]: item for item in package["files"]}
    lessons = []
    for lesson in package["lessons"]:
        values: dict[str, dict[str, Any]] = {}
        for language, raw in lesson["content"].items():
            value: dict[str, Any] = {"title": raw["title"]}
            kind = lesson["kind"]
            if kind == "text":
                value["body"] = raw.get("body", "")
            elif kind == "video":
                value |= {"url": raw["url"], "transcript": raw.get("transcript", "")}
            elif kind == "link":
                value |= {"url": raw["url"], "description": raw.get("description", "")}
            elif kind == "document":
                item = files[raw["file"]]
                value |= {
                    "description": raw.get("description", ""),
                    "document": {
                        "sha256": item["sha256"],
                        "title": raw["title"],
                        "url": reverse("course_file", args=[item["sha256"], item["name"]]),
                        "file_extension": os.path.splitext(item["name"])[1].lstrip(".").lower(),
                        "size": item["size"],
                    },
                }
            else:
                value |= {
                    "pass_mark": raw["passMark"],
                    "max_attempts": raw["maxAttempts"],
                    "questions": raw["questions"],
                }
            values[language] = value
        lessons.append(LessonContent(lesson["id"], lesson["kind"], lesson["module"], values))
    return CourseContent(tuple(package["languages"]), tuple(lessons))


def _quarantine(code: str, entry: CatalogueEntry, reason: str, payload: str) -> None:
    QuarantinedPackage.objects.get_or_create(
        peer=code,
        uuid=entry.uuid,
        version=entry.version,
        defaults={"reason": reason[:1000], "payload": payload[:65536]},
    )


def pull_one(client: httpx.Client, code: str, url: str, token: str, entry: CatalogueEntry) -> bool:
    """Pull, check and apply the package of ``entry`` from peer ``code`` at ``url``; False
    when it was quarantined. :class:`PackageUnavailable` when the peer has none."""
    base = f"{url}/federation/v1/packages/{entry.uuid}"
    payload = ""
    try:
        payload = _get(client, base, token, MAX_PACKAGE_BYTES, "the package").decode(
            "utf-8", errors="replace"
        )
        package = _check(entry, payload.strip())
        with tempfile.TemporaryDirectory() as folder:
            fetched = _fetch_files(client, base, token, package, Path(folder))
            _apply(entry, payload.strip(), package, fetched)
    except PackageError as exc:
        _quarantine(code, entry, str(exc), payload)
        return False
    return True


@transaction.atomic
def _apply(
    entry: CatalogueEntry, token: str, package: dict[str, Any], fetched: dict[str, Path]
) -> None:
    media = {item["sha256"]: item["mediaType"] for item in package["files"]}
    for sha, path in fetched.items():
        with path.open("rb") as handle:
            name = default_storage.save(f"federation/files/{sha}", File(handle))
        HeldFile.objects.get_or_create(
            sha256=sha,
            defaults={"media_type": media[sha], "size": path.stat().st_size, "file": name},
        )
    HeldPackage.objects.update_or_create(
        entry=entry, defaults={"version": package["version"], "jws": token, "package": package}
    )
    store(entry, content_of(package), "package")
    from tenant_portal.core.page_cache import bump_generation

    bump_generation()


def pull_packages(code: str, url: str, token: str) -> PullResult:
    """Pull the packages of :func:`wanted` courses from peer ``code``. A course the peer
    answers with an error is left for the next round and the others go on; a peer that cannot
    be reached at all (:class:`httpx.TransportError`) ends the round."""
    result = PullResult(code)
    with httpx.Client(timeout=TIMEOUT) as client:
        for entry in wanted(code):
            try:
                if pull_one(client, code, url, token, entry):
                    result.applied += 1
                else:
                    result.quarantined += 1
            except PackageUnavailable:
                result.unavailable += 1
            except httpx.HTTPStatusError as exc:
                result.failed.append(f"course {entry.uuid}: {str(exc)[:200]}")
    return result


def course_of(course: uuid.UUID) -> CatalogueEntry | None:
    return CatalogueEntry.objects.filter(uuid=course).first()
