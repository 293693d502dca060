"""The Karmayogi Competency Model: areas → themes → sub-themes, with proficiency levels 1-5.

Every node has a stable IRI minted from the framework's IRI and the codes on its path, so a
course tagged in one tenant means the same competency in every other. Names and descriptions
are language maps ({"en": …, "hi": …}), as they travel between instances. A node dropped
from a later file is retired, never deleted: courses and passbooks may still point at it.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import get_language


def localized(value: dict[str, str], language: str | None = None) -> str:
    """The text for ``language`` (the active one by default), else English, else any."""
    language = (language or get_language() or "en").split("-")[0]
    return value.get(language) or value.get("en") or next(iter(value.values()), "")


class Framework(models.Model):
    iri = models.URLField(unique=True, max_length=300)
    version = models.CharField(max_length=40)
    name = models.JSONField()
    loaded = models.DateTimeField(auto_now=True)

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
