"""The Karmayogi Competency Model: areas → themes → sub-themes, with proficiency levels 1-5.

Every node has a stable IRI minted from the framework's IRI and the codes on its path, so a
course tagged in one tenant means the same competency in every other. Names and descriptions
are language maps ({"en": …, "hi": …}), as they travel between instances. A node dropped
from a later file is retired, never deleted: courses and passbooks may still point at it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from modelcluster.fields import ParentalKey
from modelcluster.models import ClusterableModel
from wagtail.admin.panels import FieldPanel, InlinePanel, Panel
from wagtail.models import Orderable
from wagtail.snippets.models import register_snippet


def localized(value: dict[str, str], language: str | None = None) -> str:
    """The text for ``language`` (the active one by default), else in the portal's first
    language, else English, else any (issue 19: a leak only where no translation exists)."""
    language = (language or get_language() or "en").split("-")[0]
    first = settings.LANGUAGE_CODE.split("-")[0]
    return (
        value.get(language) or value.get(first) or value.get("en") or next(iter(value.values()), "")
    )


class Framework(models.Model):
    iri = models.URLField(unique=True, max_length=300)
    version = models.CharField(max_length=40)
    name = models.JSONField()
    loaded = models.DateTimeField(auto_now=True)
    # Empty for a framework loaded here (from a file); the hub's code for one synced from it.
    origin = models.CharField(max_length=64, blank=True, default="")
    # The hub's framework document last applied (its dateModified): an older one is refused.
    published = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{localized(self.name)} {self.version}"


class ProficiencyLevel(models.Model):
    framework = models.ForeignKey(Framework, on_delete=models.CASCADE, related_name="levels")
    level = models.PositiveSmallIntegerField()
    name = models.JSONField()
    description = models.JSONField(default=dict)

    class Meta:
        ordering = ["level"]
        constraints = [
            models.UniqueConstraint(fields=["framework", "level"], name="one_level_per_number"),
            models.CheckConstraint(
                condition=models.Q(level__gte=1, level__lte=5), name="level_between_1_and_5"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.level}. {localized(self.name)}"


class Node(models.Model):
    """What areas, themes and sub-themes share."""

    code = models.SlugField(max_length=41)
    iri = models.URLField(unique=True, max_length=400)
    name = models.JSONField()
    description = models.JSONField(default=dict)
    position = models.PositiveIntegerField(default=0)
    retired = models.BooleanField(default=False)

    class Meta:
        abstract = True
        ordering = ["position"]

    def __str__(self) -> str:
        return localized(self.name)


class Area(Node):
    framework = models.ForeignKey(Framework, on_delete=models.CASCADE, related_name="areas")

    class Meta(Node.Meta):
        constraints = [models.UniqueConstraint(fields=["framework", "code"], name="area_code")]


class Theme(Node):
    area = models.ForeignKey(Area, on_delete=models.CASCADE, related_name="themes")

    class Meta(Node.Meta):
        constraints = [models.UniqueConstraint(fields=["area", "code"], name="theme_code")]


class SubTheme(Node):
    theme = models.ForeignKey(Theme, on_delete=models.CASCADE, related_name="sub_themes")

    class Meta(Node.Meta):
        constraints = [models.UniqueConstraint(fields=["theme", "code"], name="sub_theme_code")]


def _level_choices() -> list[tuple[int, str]]:
    return [(n, str(n)) for n in range(1, 6)]


@register_snippet
class Post(ClusterableModel):
    """A post (a designation such as "Block Development Officer"): the competencies it needs,
    each to a proficiency level. Officers hold a post (``accounts.Profile``); *My learning*
    shows the gap between what the post needs and what the officer's passbook shows."""

    code: models.SlugField[str, str] = models.SlugField(
        max_length=64, unique=True, help_text=_("Stable code; the token's post claim names it.")
    )
    name = models.JSONField(
        help_text=_('The name in every language, e.g. {"en": "Block Development Officer"}.')
    )
    department_type: models.CharField[str, str] = models.CharField(
        max_length=100, blank=True, help_text=_("The kind of department that has this post.")
    )
    retired: models.BooleanField[bool, bool] = models.BooleanField(
        default=False, help_text=_("No longer offered to officers.")
    )
    # Empty for this instance's own posts (editable here); the hub's code for the posts it
    # publishes, which a sync writes and nobody edits here.
    origin: models.CharField[str, str] = models.CharField(
        max_length=64, blank=True, default="", editable=False
    )
    # Raised at each save of an own post; a synced post keeps its publisher's.
    version: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(
        default=1, editable=False
    )
    modified: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now=True)

    panels: ClassVar[list[Panel]] = [
        FieldPanel("code"),
        FieldPanel("name"),
        FieldPanel("department_type"),
        FieldPanel("retired"),
        InlinePanel("requirements", label=_("Required competencies"), min_num=1),
    ]

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return localized(self.name) or self.code

    @property
    def read_only(self) -> bool:
        """A post the hub publishes: its sync writes it, nobody edits it here."""
        return bool(self.origin)

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.origin and self.pk is not None:
            self.version += 1
        super().save(*args, **kwargs)

    def clean(self) -> None:
        super().clean()
        if self.read_only:
            raise ValidationError(
                _("This post is published by the federation's hub (%(hub)s); it is read-only here.")
                % {"hub": self.origin}
            )
        if not isinstance(self.name, dict) or not self.name:
            raise ValidationError({"name": _('Give a language map, e.g. {"en": "…"}.')})
        if not all(isinstance(k, str) and isinstance(v, str) and v for k, v in self.name.items()):
            raise ValidationError({"name": _("Each language's name must be non-empty text.")})


class PostCompetency(Orderable):
    """A competency a post needs, and to which proficiency level."""

    post = ParentalKey(Post, on_delete=models.CASCADE, related_name="requirements")
    sub_theme: models.ForeignKey[SubTheme, SubTheme] = models.ForeignKey(
        SubTheme, on_delete=models.PROTECT, related_name="+"
    )
    level: models.PositiveSmallIntegerField[int, int] = models.PositiveSmallIntegerField(
        choices=_level_choices, default=1
    )

    panels: ClassVar[list[Panel]] = [FieldPanel("sub_theme"), FieldPanel("level")]

    class Meta(Orderable.Meta):
        constraints = [
            models.UniqueConstraint(fields=["post", "sub_theme"], name="post_competency_once")
        ]

    def __str__(self) -> str:
        return f"{self.sub_theme} ({self.level})"
