"""Demo courses: realistic content in the tenant's languages, for a portal worth clicking.

The files live in ``seed/<tenant-code>/*.json`` (format in ``docs/portal.md``). A tenant with
no folder of its own (a new state or country) gets ten of the hub's courses as its own,
under its own name. Each course becomes a :class:`CoursePage` in its best language, the
tenant's default when the file has it, plus a translation for every other language of the
tenant that the file covers; publishing them fills the catalogue table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from django.conf import settings
from django.db import transaction
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from wagtail.models import Locale

from tenant_portal.catalogue.models import CatalogueIndexPage, CourseCompetency, CoursePage
from tenant_portal.competencies.models import SubTheme

SEED_DIR = Path(__file__).resolve().parent / "seed"
HUB_SEED = "karmayogi-bharat"
FALLBACK_COUNT = 10

Text = dict[str, Annotated[str, Field(min_length=1)]]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeedCompetency(_Model):
    area: str
    theme: str
    sub_theme: str = Field(alias="subTheme")
    level: int = Field(ge=1, le=5)


class TextLessonSeed(_Model):
    type: Literal["text"]
    title: Text
    body: Text


class LinkLessonSeed(_Model):
    type: Literal["link"]
    title: Text
    url: Annotated[str, Field(pattern=r"^https://")]
    description: Text


class ChoiceSeed(_Model):
    text: Text
    correct: bool


class QuestionSeed(_Model):
    prompt: Text
    choices: list[ChoiceSeed] = Field(min_length=2, max_length=8)


class QuizLessonSeed(_Model):
    type: Literal["quiz"]
    title: Text
    pass_mark: int = Field(alias="passMark", ge=1, le=100)
    max_attempts: int = Field(alias="maxAttempts", ge=1, le=20)
    questions: list[QuestionSeed] = Field(min_length=1)


LessonSeed = Annotated[
    TextLessonSeed | LinkLessonSeed | QuizLessonSeed, Field(discriminator="type")
]


class ModuleSeed(_Model):
    title: Text
    lessons: list[LessonSeed] = Field(min_length=1)


class CourseSeed(_Model):
    slug: Annotated[str, Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=60)]
    title: Text
    summary: Text
    duration_minutes: int = Field(alias="durationMinutes", ge=1)
    competencies: list[SeedCompetency] = Field(min_length=1)
    modules: list[ModuleSeed] = Field(min_length=1)
    provider: Text | None = None


class SeedFile(_Model):
    provider: Text
    courses: list[CourseSeed]


class SeedError(ValueError):
    """A seed file that cannot be used; one line naming the file and the entry."""


def read_seed(path: Path) -> SeedFile:
    try:
        return SeedFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise SeedError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise SeedError(f"{path}: {where}: {first['msg']}") from None


def seed_courses_for(tenant: str) -> Iterator[tuple[CourseSeed, Text]]:
    """(course, provider) pairs for ``tenant``: its own files, or ten of the hub's."""
    folder = SEED_DIR / tenant
    own = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if own:
        for path in own:
            seed = read_seed(path)
            for course in seed.courses:
                yield course, course.provider or seed.provider
        return
    names = settings.PORTAL.branding.provider_name
    site = settings.PORTAL.site_name
    provider = {code: names.get(code, site) for code, _name in settings.LANGUAGES}
    taken = 0
    for path in sorted((SEED_DIR / HUB_SEED).glob("*.json")):
        for course in read_seed(path).courses:
            if taken == FALLBACK_COUNT:
                return
            yield course.model_copy(update={"slug": f"{tenant}-{course.slug}"[:60]}), provider
            taken += 1


def _pick(text: Text, language: str) -> str:
    return text.get(language) or text.get("en") or next(iter(text.values()))


def _stream(course: CourseSeed, language: str) -> list[dict[str, Any]]:
    """The course's modules as StreamField data in ``language``; block ids are fixed by
    position so every translation shares them (progress follows the learner across
    languages)."""
    modules = []
    for m, module in enumerate(course.modules):
        lessons = []
        for n, lesson in enumerate(module.lessons):
            value: dict[str, Any] = {"title": _pick(lesson.title, language)}
            if isinstance(lesson, TextLessonSeed):
                value["body"] = _pick(lesson.body, language)
            elif isinstance(lesson, LinkLessonSeed):
                value |= {"url": lesson.url, "description": _pick(lesson.description, language)}
            else:
                value |= {
                    "pass_mark": lesson.pass_mark,
                    "max_attempts": lesson.max_attempts,
                    "questions": [
                        {
                            "prompt": _pick(q.prompt, language),
                            "choices": [
                                {"text": _pick(c.text, language), "correct": c.correct}
                                for c in q.choices
                            ],
                        }
                        for q in lesson.questions
                    ],
                }
            lessons.append({"type": lesson.type, "value": value, "id": f"{course.slug}-{m}-{n}"})
        modules.append(
            {
                "type": "module",
                "value": {"title": _pick(module.title, language), "lessons": lessons},
                "id": f"{course.slug}-{m}",
            }
        )
    return modules


def _fill(page: CoursePage, course: CourseSeed, provider: Text, language: str) -> None:
    page.title = _pick(course.title, language)
    page.summary = _pick(course.summary, language)
    page.provider = _pick(provider, language)
    page.duration_minutes = course.duration_minutes
    page.modules = _stream(course, language)


def _sub_themes() -> dict[tuple[str, str, str], SubTheme]:
    return {
        (s.theme.area.code, s.theme.code, s.code): s
        for s in SubTheme.objects.select_related("theme__area").filter(retired=False)
    }


@transaction.atomic
def seed_course(
    catalogue: CatalogueIndexPage,
    course: CourseSeed,
    provider: Text,
    sub_themes: dict[tuple[str, str, str], SubTheme],
) -> CoursePage | None:
    """Create and publish one course with its translations; None when its slug exists."""
    if CoursePage.objects.filter(slug=course.slug).exists():
        return None
    languages = [code for code, _name in settings.LANGUAGES]
    available = [code for code in languages if code in course.title]
    lead = available[0] if available else ("en" if "en" in course.title else "")
    lead = lead or next(iter(course.title))
    locale, _created = Locale.objects.get_or_create(language_code=lead)
    page = CoursePage(slug=course.slug, locale=locale)
    _fill(page, course, provider, lead)
    for position, term in enumerate(course.competencies):
        key = (term.area, term.theme, term.sub_theme)
        if key not in sub_themes:
            raise SeedError(f"{course.slug}: unknown competency {'/'.join(key)}")
        page.competency_tags.add(
            CourseCompetency(sub_theme=sub_themes[key], level=term.level, sort_order=position)
        )
    catalogue.add_child(instance=page)
    page.save_revision().publish()
    for language in available:
        if language == lead:
            continue
        translation = page.copy_for_translation(
            Locale.objects.get(language_code=language), copy_parents=True
        )
        _fill(translation, course, provider, language)
        translation.save()
        translation.save_revision().publish()
    return page


def seed(tenant: str) -> int:
    """Seed ``tenant``'s catalogue; returns the number of courses created."""
    catalogue = CatalogueIndexPage.objects.filter(locale__language_code=settings.LANGUAGE_CODE)
    index = catalogue.first() or CatalogueIndexPage.objects.first()
    if index is None:
        raise SeedError("the portal has no catalogue page yet: run prepare_portal first")
    sub_themes = _sub_themes()
    created = 0
    for course, provider in seed_courses_for(tenant):
        if seed_course(index, course, provider, sub_themes) is not None:
            created += 1
    return created
