"""A course page's content, rendered once per published revision and language.

Everything on a course page but the visitor's own state is the same for every visitor: the
title, summary and description, the facts, the competencies, the schema.org block and each
lesson's content. It is rendered once and kept in the shared cache under the page, its live
revision, the language and the page cache's generation; a request then fills in only the
learner's enrolment, lessons done and quiz attempts (``learning.progress.course_context``).

The fragment is rendered without the request, so nothing of a visitor (a name, a CSRF token)
can end up in it. It is kept until the next publish of the page (a new live revision) or any
change that moves the generation (another publish, a move, the branding or the competency
framework, catalogue records arriving): a publish shows at once. Previews are rendered every
time and never kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.cache import cache
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language

from tenant_portal.core.page_cache import request_generation

if TYPE_CHECKING:
    from tenant_portal.catalogue.models import CoursePage
    from tenant_portal.learning.content import CourseContent

# Part of the key: a deployment that changes what is kept does not read an older shape.
FORMAT = 1
TIMEOUT_SECONDS = 3600


@dataclass(frozen=True)
class RenderedLesson:
    """One lesson: what the learner's state needs of it, and its rendered content."""

    id: str
    kind: str
    module: str
    title: str
    max_attempts: int  # quizzes only; 0 otherwise
    action: str  # where the learner posts: the lesson done, or a quiz's answers
    body: str  # the lesson; for a quiz its title and rules
    questions: str = ""  # a quiz's questions as form fields (the form is the learner's)
    preview: str = ""  # a quiz's questions as a list, for visitors not enrolled

    # Rendered by our own templates, autoescaped: safe to put in the page as they are.
    @property
    def body_html(self) -> SafeString:
        return mark_safe(self.body)

    @property
    def questions_html(self) -> SafeString:
        return mark_safe(self.questions)

    @property
    def preview_html(self) -> SafeString:
        return mark_safe(self.preview)


@dataclass(frozen=True)
class RenderedCourse:
    about: str  # the link back, title, summary, description, facts and competencies
    jsonld: str  # the schema.org block of the page's head
    lessons: tuple[RenderedLesson, ...]

    @property
    def about_html(self) -> SafeString:
        return mark_safe(self.about)

    @property
    def jsonld_html(self) -> SafeString:
        return mark_safe(self.jsonld)


def rendered_course(page: CoursePage, request: HttpRequest) -> RenderedCourse:
    """The course's content, from the cache or rendered now (and kept, unless a preview)."""
    revision = page.live_revision_id
    if getattr(request, "is_preview", False) or revision is None:
        return render_course(page, request)
    gen = request_generation(request)
    key = f"course-render:{FORMAT}:{gen}:{page.pk}:{revision}:{get_language()}"
    found: RenderedCourse | None = cache.get(key)
    if found is None:
        # Read afresh: the page served may be a worker's shared copy (core.site_cache), whose
        # stream content is decoded lazily.
        found = render_course(type(page).objects.get(pk=page.pk), request)
        cache.set(key, found, TIMEOUT_SECONDS)
    return found


def render_course(page: CoursePage, request: HttpRequest) -> RenderedCourse:
    from tenant_portal.branding.models import BrandingSettings
    from tenant_portal.catalogue.models import CatalogueEntry
    from tenant_portal.catalogue.templatetags.catalogue_tags import course_jsonld

    parent = page.get_parent()
    provider = page.provider or BrandingSettings.for_request(request).display_name
    about = render_to_string(
        "catalogue/course_about.html",
        {
            "page": page,
            "catalogue_url": parent.get_url(request) if parent else "/",
            "provider": provider,
            "competencies": page.competencies(),
        },
    )
    entry = CatalogueEntry.objects.filter(uuid=page.translation_key).first()
    return RenderedCourse(
        about=about,
        jsonld=str(course_jsonld(entry)),
        lessons=tuple(
            render_lessons(_content(page, request), page.locale.language_code, page.translation_key)
        ),
    )


def _content(page: CoursePage, request: HttpRequest) -> CourseContent:
    """What learners take (``learning.content``): the stored version of a published course,
    the page's own content in a preview (or before its content is stored)."""
    from tenant_portal.learning.content import content_from_pages, current_content

    if not getattr(request, "is_preview", False) and page.live_revision_id is not None:
        stored = current_content(page.translation_key)
        if stored is not None:
            return stored
    return content_from_pages([page])


def render_lessons(content: CourseContent, language: str, course: Any) -> list[RenderedLesson]:
    """Each lesson of ``content`` rendered in ``language`` (else the course's lead language),
    its forms posting to the learning views of ``course`` (a catalogue entry's uuid)."""
    from tenant_portal.catalogue.blocks import video_embed

    lessons = []
    for lesson in content.lessons:
        value = lesson.value(language)
        kind, lesson_id = lesson.kind, lesson.id
        module_title = lesson.module_title(language)
        route = "quiz" if kind == "quiz" else "lesson_done"
        action = reverse(route, args=[course, lesson_id])
        context: dict[str, Any]
        if kind == "quiz":
            shown = {
                **value,
                "questions": [
                    {**q, "multiple": sum(1 for c in q["choices"] if c["correct"]) > 1}
                    for q in value["questions"]
                ],
            }
            context = {"value": shown, "lesson_id": lesson_id}
            rendered = RenderedLesson(
                id=lesson_id,
                kind=kind,
                module=module_title,
                title=str(value["title"]),
                max_attempts=int(value["max_attempts"]),
                action=action,
                body=render_to_string("catalogue/lessons/quiz.html", context),
                questions=render_to_string("catalogue/lessons/quiz_questions.html", context),
                preview=render_to_string("catalogue/lessons/quiz_preview.html", context),
            )
        else:
            context = {"value": value, "lesson_id": lesson_id}
            if kind == "video":
                context["embed"] = video_embed(value["url"])
            rendered = RenderedLesson(
                id=lesson_id,
                kind=kind,
                module=module_title,
                title=str(value["title"]),
                max_attempts=0,
                action=action,
                body=render_to_string(f"catalogue/lessons/{kind}.html", context),
            )
        lessons.append(rendered)
    return lessons
