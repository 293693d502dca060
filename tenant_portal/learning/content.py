"""A course's content as learning reads it: lessons in order, each in every language it has.

Every learning view (the course page's lessons, enrolment, lessons done, quizzes, completion,
certificates) reads :class:`CourseContent`, never a Wagtail page, so a course that arrives
from another instance as a bulk catalogue row (DESIGN §5) is learned the same way as one
authored here. Its stored form is a :class:`~tenant_portal.learning.models.CourseVersion`
with its :class:`~tenant_portal.learning.models.CourseLesson` rows.

A local course's content is taken from the raw StreamField data of its live pages (the lead
page first, then its translations) whenever one of them is published: the lead page decides
the lessons, their order, kinds and quiz rules; a translation adds its language to each
lesson whose id it shares. Lesson ids are the StreamField block ids, which survive edits and
translations, so progress follows a learner across versions and languages.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from tenant_portal.catalogue.blocks import Lesson
from tenant_portal.catalogue.models import CatalogueEntry
from tenant_portal.learning.models import CourseLesson, CourseVersion

KINDS = ("text", "video", "document", "link", "quiz")

# Document ids → what a lesson shows of each document (see CourseLesson.content).
DocumentFacts = Callable[[Iterable[int]], dict[int, dict[str, Any]]]


@dataclass(frozen=True)
class LessonContent:
    id: str
    kind: str
    module: dict[str, str]  # the module's title, a language map
    content: dict[str, dict[str, Any]]  # language → the lesson in it

    def value(self, language: str | None = None) -> dict[str, Any]:
        """The lesson in ``language``, else in the course's lead language."""
        if language and language in self.content:
            return self.content[language]
        return next(iter(self.content.values()))

    def module_title(self, language: str | None = None) -> str:
        if language and self.module.get(language):
            return self.module[language]
        return next(iter(self.module.values()), "")

    def in_language(self, language: str | None = None) -> Lesson:
        return Lesson(self.id, self.kind, self.value(language), self.module_title(language))


@dataclass(frozen=True)
class CourseContent:
    languages: tuple[str, ...]  # the lead language first
    lessons: tuple[LessonContent, ...]

    def lesson(self, lesson_id: str) -> LessonContent:
        for lesson in self.lessons:
            if lesson.id == lesson_id:
                return lesson
        raise LookupError(lesson_id)

    @property
    def lesson_ids(self) -> set[str]:
        return {lesson.id for lesson in self.lessons}

    def rows(self) -> list[tuple[str, str, dict[str, str], dict[str, dict[str, Any]]]]:
        """What a version stores, to tell whether anything changed."""
        return [(item.id, item.kind, item.module, item.content) for item in self.lessons]


# --- from the raw StreamField data of course pages --------------------------------------------


def _items(raw: Any) -> list[Any]:
    """A ListBlock's raw values: ``{"type": "item", "value": ...}`` dicts, or plain values
    (the format before Wagtail 2.16)."""
    return [
        item["value"] if isinstance(item, dict) and item.get("type") == "item" else item
        for item in raw or []
    ]


def _text(raw: Any) -> str:
    return "" if raw is None else str(raw)


def stream_lessons(modules: Any) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(lesson id, kind, module title, raw value) of a ``modules`` stream's raw data."""
    for module in modules or []:
        value = module.get("value") or {}
        for lesson in value.get("lessons") or []:
            if lesson.get("type") in KINDS and lesson.get("id"):
                yield str(lesson["id"]), lesson["type"], _text(value.get("title")), lesson["value"]


def _questions(raw: Any) -> list[dict[str, Any]]:
    return [
        {
            "prompt": _text(question.get("prompt")),
            "choices": [
                {"text": _text(choice.get("text")), "correct": bool(choice.get("correct"))}
                for choice in _items(question.get("choices"))
            ],
        }
        for question in _items(raw)
    ]


def _value(kind: str, raw: dict[str, Any], documents: dict[int, dict[str, Any]]) -> dict[str, Any]:
    value: dict[str, Any] = {"title": _text(raw.get("title"))}
    if kind == "text":
        value["body"] = _text(raw.get("body"))
    elif kind == "video":
        value |= {"url": _text(raw.get("url")), "transcript": _text(raw.get("transcript"))}
    elif kind == "document":
        document = raw.get("document")
        value |= {
            "description": _text(raw.get("description")),
            "document": documents.get(document) if isinstance(document, int) else None,
        }
    elif kind == "link":
        value |= {"url": _text(raw.get("url")), "description": _text(raw.get("description"))}
    else:
        value |= {
            "pass_mark": int(raw.get("pass_mark") or 60),
            "max_attempts": int(raw.get("max_attempts") or 3),
            "questions": _questions(raw.get("questions")),
        }
    return value


def _translated_quiz(lead: dict[str, Any], other: dict[str, Any]) -> dict[str, Any] | None:
    """A translation's quiz, graded by the lead's rules and answers; None when its questions
    or choices do not line up with the lead's (then the lead's language is shown)."""
    shape = [len(q["choices"]) for q in lead["questions"]]
    if [len(q["choices"]) for q in other["questions"]] != shape:
        return None
    return {
        **lead,
        "title": other["title"],
        "questions": [
            {
                "prompt": theirs["prompt"],
                "choices": [
                    {"text": text["text"], "correct": own["correct"]}
                    for own, text in zip(ours["choices"], theirs["choices"], strict=True)
                ],
            }
            for ours, theirs in zip(lead["questions"], other["questions"], strict=True)
        ],
    }


def content_from_streams(
    streams: Sequence[tuple[str, Any]], document_facts: DocumentFacts
) -> CourseContent:
    """The content of a course from its pages' raw ``modules`` data, ``(language, data)``
    with the lead page first."""
    parsed = [(language, list(stream_lessons(data))) for language, data in streams]
    wanted = {
        raw["document"]
        for _, lessons in parsed
        for _, kind, _, raw in lessons
        if kind == "document" and isinstance(raw.get("document"), int)
    }
    documents = document_facts(wanted) if wanted else {}
    if not parsed:
        return CourseContent((), ())
    lead_language, lead_lessons = parsed[0]
    others = {
        language: {lesson_id: (kind, module, raw) for lesson_id, kind, module, raw in lessons}
        for language, lessons in parsed[1:]
    }
    lessons = []
    for lesson_id, kind, module, raw in lead_lessons:
        lead_value = _value(kind, raw, documents)
        content = {lead_language: lead_value}
        titles = {lead_language: module}
        for language, found in others.items():
            if found.get(lesson_id, ("",))[0] != kind:
                continue
            _, their_module, their_raw = found[lesson_id]
            value: dict[str, Any] | None = _value(kind, their_raw, documents)
            if kind == "quiz" and value is not None:
                value = _translated_quiz(lead_value, value)
            if value is not None:
                content[language] = value
                titles[language] = their_module
        lessons.append(LessonContent(lesson_id, kind, titles, content))
    return CourseContent(tuple(language for language, _ in streams), tuple(lessons))


def document_facts(ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """What a document lesson shows of each of the documents ``ids`` (Wagtail's own)."""
    from wagtail.documents import get_document_model

    found = get_document_model().objects.in_bulk(list(ids))
    return {
        pk: {
            "id": pk,
            "title": document.title,
            "url": document.url,
            "file_extension": os.path.splitext(document.file.name)[1].lstrip(".").lower(),
            "size": document.file_size,
        }
        for pk, document in found.items()
    }


def content_from_pages(pages: Sequence[Any]) -> CourseContent:
    """The content of a course from its live pages, the lead page first."""
    return content_from_streams(
        [(page.locale.language_code, page.modules.raw_data) for page in pages], document_facts
    )


# --- stored versions -----------------------------------------------------------------------------


def _from_version(version: CourseVersion) -> CourseContent:
    return CourseContent(
        tuple(version.languages),
        tuple(
            LessonContent(row.lesson, row.kind, row.module, row.content)
            for row in version.lessons.all()
        ),
    )


def current_version(course: Any) -> CourseVersion | None:
    """The latest content version of the course ``course`` (a catalogue entry's uuid), with
    its lessons: two queries."""
    return (
        CourseVersion.objects.filter(entry__uuid=course)
        .prefetch_related("lessons")
        .order_by("-number")
        .first()
    )


def current_content(course: Any) -> CourseContent | None:
    version = current_version(course)
    return _from_version(version) if version is not None else None


@transaction.atomic
def store(entry: CatalogueEntry, content: CourseContent, source: str) -> CourseVersion:
    """Keep ``content`` as the course's new version, unless it is what the latest one holds."""
    latest = (
        CourseVersion.objects.select_for_update()
        .filter(entry=entry)
        .prefetch_related("lessons")
        .order_by("-number")
        .first()
    )
    if latest is not None:
        kept = _from_version(latest)
        if kept.languages == content.languages and kept.rows() == content.rows():
            return latest
    version = CourseVersion.objects.create(
        entry=entry,
        number=latest.number + 1 if latest else 1,
        source=source,
        languages=list(content.languages),
    )
    CourseLesson.objects.bulk_create(
        CourseLesson(
            version=version,
            lesson=lesson.id,
            position=position,
            kind=lesson.kind,
            module=lesson.module,
            content=lesson.content,
        )
        for position, lesson in enumerate(content.lessons)
    )
    return version


def store_from_pages(entry: CatalogueEntry, pages: Sequence[Any]) -> CourseVersion:
    """Keep the content of a local course's live pages (the lead page first)."""
    return store(entry, content_from_pages(pages), "page")


# --- where a course is learned ------------------------------------------------------------------


def learned_here(entry: CatalogueEntry) -> bool:
    """Whether learners take ``entry`` on this portal: a course made here, or one from
    elsewhere that the subscription does not keep "link only" (by origin or course IRI)."""
    if entry.page_id is not None or entry.is_local:
        return True
    subscribe = getattr(settings.PORTAL.federation, "subscribe", None)
    link_only = set(getattr(subscribe, "link_only", ()) or ())
    return entry.origin not in link_only and entry.iri not in link_only


def learning_url(entry: CatalogueEntry) -> str:
    """Where a learner takes ``entry`` here: its course page, or for a course from elsewhere
    its record's page in the catalogue (``/courses/<uuid>/``)."""
    if entry.page_id is not None:
        return entry.url
    from tenant_portal.catalogue.models import CatalogueIndexPage

    index = CatalogueIndexPage.objects.filter(alias_of__isnull=True).order_by("pk").first()
    base = index.url if index is not None and index.url else "/courses/"
    return f"{base}{entry.uuid}/"
