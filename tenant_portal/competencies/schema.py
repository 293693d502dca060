"""The competency file's shape (the framework as it travels between instances), validated."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StringConstraints, field_validator

Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,40}$")]


def _language_map(value: dict[str, str]) -> dict[str, str]:
    """{"en": …, "hi": …}: English is required, as every instance must be able to show it."""
    if not isinstance(value, dict) or not value.get("en", "").strip():
        raise ValueError("needs a non-empty English text under 'en'")
    return {str(k): str(v) for k, v in value.items()}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class _Named(_Strict):
    code: Code
    name: dict[str, str]
    description: dict[str, str] = Field(default_factory=lambda: {"en": ""})

    @field_validator("name")
    @classmethod
    def _name(cls, value: dict[str, str]) -> dict[str, str]:
        return _language_map(value)


def _unique_codes(items: list[_Named], what: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item.code in seen:
            raise ValueError(f"{what} code {item.code!r} appears twice")
        seen.add(item.code)


class SubThemeIn(_Named):
    pass


class ThemeIn(_Named):
    sub_themes: list[SubThemeIn] = Field(alias="subThemes", min_length=1)

    @field_validator("sub_themes")
    @classmethod
    def _codes(cls, value: list[SubThemeIn]) -> list[SubThemeIn]:
        _unique_codes(list(value), "sub-theme")
        return value


class AreaIn(_Named):
    themes: list[ThemeIn] = Field(min_length=1)

    @field_validator("themes")
    @classmethod
    def _codes(cls, value: list[ThemeIn]) -> list[ThemeIn]:
        _unique_codes(list(value), "theme")
        return value


class LevelIn(_Strict):
    level: int = Field(ge=1, le=5)
    name: dict[str, str]
    description: dict[str, str] = Field(default_factory=lambda: {"en": ""})

    @field_validator("name")
    @classmethod
    def _name(cls, value: dict[str, str]) -> dict[str, str]:
        return _language_map(value)


class FrameworkMeta(_Strict):
    iri: HttpUrl
    version: str = Field(min_length=1, max_length=40)
    name: dict[str, str]

    @field_validator("name")
    @classmethod
    def _name(cls, value: dict[str, str]) -> dict[str, str]:
        return _language_map(value)


class FrameworkFile(_Strict):
    framework: FrameworkMeta
    levels: list[LevelIn] = Field(min_length=5, max_length=5)
    areas: list[AreaIn] = Field(min_length=1)

    @field_validator("levels")
    @classmethod
    def _levels(cls, value: list[LevelIn]) -> list[LevelIn]:
        if sorted(level.level for level in value) != [1, 2, 3, 4, 5]:
            raise ValueError("levels must be exactly 1, 2, 3, 4 and 5")
        return value

    @field_validator("areas")
    @classmethod
    def _codes(cls, value: list[AreaIn]) -> list[AreaIn]:
        _unique_codes(list(value), "area")
        return value
