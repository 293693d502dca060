"""A course's content: modules of lessons, each lesson one StreamField block.

Every lesson block keeps its StreamField id across revisions and translations (Wagtail copies
the raw stream), so a learner's progress and quiz attempts point at the block id and survive
edits and a change of language.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from wagtail import blocks
from wagtail.blocks.struct_block import StructBlockValidationError
from wagtail.documents.blocks import DocumentChooserBlock

_YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{6,20}$")


def video_embed(url: str) -> dict[str, str] | None:
    """How to show a video without asking a third party first: an iframe for YouTube or
    Vimeo (YouTube's no-cookie host), a <video> element for a direct file, else None.

    Wagtail's EmbedBlock fetches oEmbed data from the provider when the page renders; a
    portal on a government network often cannot, and the lookup leaks who watches what.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").removeprefix("www.").removeprefix("m.")
    if parts.scheme not in ("http", "https"):
        return None
    video_id = ""
    if host == "youtu.be":
        video_id = parts.path.strip("/")
    elif host in ("youtube.com", "youtube-nocookie.com"):
        if parts.path == "/watch":
            video_id = parse_qs(parts.query).get("v", [""])[0]
        elif parts.path.startswith(("/embed/", "/shorts/")):
            video_id = parts.path.split("/")[2]
    if video_id:
        if not _YOUTUBE_ID.match(video_id):
            return None
        return {"kind": "iframe", "src": f"https://www.youtube-nocookie.com/embed/{video_id}"}
    if host == "vimeo.com" and parts.path.strip("/").isdigit():
        return {"kind": "iframe", "src": f"https://player.vimeo.com/video/{parts.path.strip('/')}"}
    if parts.path.lower().endswith((".mp4", ".webm", ".ogv")):
        return {"kind": "file", "src": url}
    return None


class TextLesson(blocks.StructBlock):
    title = blocks.CharBlock(max_length=200)
    body = blocks.RichTextBlock(features=["h3", "bold", "italic", "ol", "ul", "link"])

    class Meta:
        icon = "doc-full"
        label = _("Text")
        template = "catalogue/lessons/text.html"


class VideoLesson(blocks.StructBlock):
    title = blocks.CharBlock(max_length=200)
    url = blocks.URLBlock(help_text=_("A YouTube or Vimeo address, or a direct .mp4/.webm file."))
    transcript = blocks.RichTextBlock(
        required=False, help_text=_("What the video says, for learners who cannot hear it.")
    )

    def clean(self, value: Any) -> Any:
        value = super().clean(value)
        if video_embed(value["url"]) is None:
            raise StructBlockValidationError(
                {"url": ValidationError(_("Use a YouTube or Vimeo address or a video file."))}
            )
        return value

    def get_context(self, value: Any, parent_context: dict[str, Any] | None = None) -> Any:
        context = super().get_context(value, parent_context)
        context["embed"] = video_embed(value["url"])
        return context

    class Meta:
        icon = "media"
        label = _("Video")
        template = "catalogue/lessons/video.html"


class DocumentLesson(blocks.StructBlock):
    title = blocks.CharBlock(max_length=200)
    document = DocumentChooserBlock()
    description = blocks.TextBlock(required=False)

    class Meta:
        icon = "doc-empty"
        label = _("Document")
        template = "catalogue/lessons/document.html"


class LinkLesson(blocks.StructBlock):
    title = blocks.CharBlock(max_length=200)
    url = blocks.URLBlock()
    description = blocks.TextBlock(required=False)

    class Meta:
        icon = "link"
        label = _("External link")
        template = "catalogue/lessons/link.html"


class ChoiceBlock(blocks.StructBlock):
    text = blocks.CharBlock(max_length=500)
    correct = blocks.BooleanBlock(required=False)


class QuestionValue(blocks.StructValue):
    @property
    def multiple(self) -> bool:
        """More than one right choice: the learner ticks all of them (checkboxes)."""
        return sum(1 for choice in self["choices"] if choice["correct"]) > 1


class QuestionBlock(blocks.StructBlock):
    prompt = blocks.TextBlock()
    choices = blocks.ListBlock(ChoiceBlock(), min_num=2, max_num=8)

    class Meta:
        value_class = QuestionValue

    def clean(self, value: Any) -> Any:
        value = super().clean(value)
        if not any(choice["correct"] for choice in value["choices"]):
            raise StructBlockValidationError(
                {"choices": ValidationError(_("Mark at least one choice as correct."))}
            )
        return value


class QuizLesson(blocks.StructBlock):
    title = blocks.CharBlock(max_length=200)
    pass_mark = blocks.IntegerBlock(
        min_value=1, max_value=100, default=60, help_text=_("Percentage needed to pass.")
    )
    max_attempts = blocks.IntegerBlock(min_value=1, max_value=20, default=3)
    questions = blocks.ListBlock(QuestionBlock(), min_num=1, max_num=50)

    class Meta:
        icon = "tasks"
        label = _("Quiz")
        template = "catalogue/lessons/quiz.html"


class LessonsBlock(blocks.StreamBlock):
    text = TextLesson()
    video = VideoLesson()
    document = DocumentLesson()
    link = LinkLesson()
    quiz = QuizLesson()


class ModuleBlock(blocks.StructBlock):
    title = blocks.CharBlock(max_length=200)
    lessons = LessonsBlock(min_num=1)

    class Meta:
        icon = "folder-open-inverse"
        label = _("Module")


class CourseContentBlock(blocks.StreamBlock):
    """A course's modules. Malformed editor data (a count that is not a number, a missing
    field: a broken client or a hand-made request) becomes a form error naming the field,
    never a server error, and nothing is saved."""

    module = ModuleBlock()

    class Meta:
        min_num = 1

    def value_from_datadict(self, data: Any, files: Any, prefix: str) -> Any:
        try:
            return super().value_from_datadict(data, files, prefix)
        except (KeyError, ValueError, TypeError, IndexError):
            value = blocks.StreamValue(self, [])
            value.malformed = True
            return value

    def clean(self, value: Any) -> Any:
        if getattr(value, "malformed", False):
            raise ValidationError(
                _(
                    "The course content arrived incomplete or malformed, so nothing was saved. "
                    "Reload the editor and try again."
                )
            )
        return super().clean(value)


@dataclass(frozen=True)
class Lesson:
    id: str
    kind: str
    value: Any
    module: str

    @property
    def title(self) -> str:
        return str(self.value["title"])


def lessons_of(modules: Any) -> Iterator[Lesson]:
    """The lessons of a course's ``modules`` stream, in order."""
    for module in modules:
        for lesson in module.value["lessons"]:
            yield Lesson(str(lesson.id), lesson.block_type, lesson.value, module.value["title"])
