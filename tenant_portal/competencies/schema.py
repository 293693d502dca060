"""The competency file's shape (the framework as it travels between instances), validated."""

from __future__ import annotations

from typing import Annotated, Protocol, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, StringConstraints

Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,40}$")]


def _language_map(value: dict[str, str]) -> dict[str, str]:
    """{"en": …, "hi": …}: English is required, as every instance must be able to show it."""
    if not value.get("en", "").strip():
        raise ValueError("needs a non-empty English text under 'en'")
    return value


LanguageMap = Annotated[dict[str, str], AfterValidator(_language_map)]


class _Coded(Protocol):
    code: str


C = TypeVar("C", bound=_Coded)


def _unique_codes(items: list[C]) -> list[C]:
    seen: set[str] = set()
    for item in items:
        if item.code in seen:
            raise ValueError(f"code {item.code!r} appears twice")
        seen.add(item.code)
    return items


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class _Named(_Strict):
    code: Code
    name: LanguageMap
    description: dict[str, str] = Field(default_factory=lambda: {"en": ""})


class SubThemeIn(_Named):
    pass


class ThemeIn(_Named):
    sub_themes: Annotated[list[SubThemeIn], AfterValidator(_unique_codes)] = Field(
        alias="subThemes", min_length=1
    )


class AreaIn(_Named):
    themes: Annotated[list[ThemeIn], AfterValidator(_unique_codes)] = Field(min_length=1)


class LevelIn(_Strict):
    level: int = Field(ge=1, le=5)
    name: LanguageMap
    description: dict[str, str] = Field(default_factory=lambda: {"en": ""})


class FrameworkMeta(_Strict):
    iri: HttpUrl
    version: str = Field(min_length=1, max_length=40)
    name: LanguageMap


def _five_levels(levels: list[LevelIn]) -> list[LevelIn]:
    if sorted(level.level for level in levels) != [1, 2, 3, 4, 5]:
        raise ValueError("levels must be exactly 1, 2, 3, 4 and 5")
    return levels


class FrameworkFile(_Strict):
    framework: FrameworkMeta
    levels: Annotated[list[LevelIn], AfterValidator(_five_levels)]
    areas: Annotated[list[AreaIn], AfterValidator(_unique_codes)] = Field(min_length=1)
