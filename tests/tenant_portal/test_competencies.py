"""The competency framework: the shipped sample, stable IRIs, reloads, and refused files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from tenant_portal.competencies.models import (
    Area,
    Framework,
    ProficiencyLevel,
    SubTheme,
    Theme,
    localized,
)
from tenant_portal.competencies.services import SAMPLE, CompetencyFileError, framework_load

pytestmark = pytest.mark.django_db


def sample() -> dict[str, Any]:
    return dict(json.loads(SAMPLE.read_text(encoding="utf-8")))


def write(tmp_path: Path, data: Any, name: str = "kcm.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_the_sample_loads_all_three_areas_and_at_least_40_sub_themes() -> None:
    result = framework_load(path=SAMPLE)
    assert {a.code for a in Area.objects.all()} == {"behavioural", "functional", "domain"}
    assert SubTheme.objects.count() >= 40 and result.created == (
        Area.objects.count() + Theme.objects.count() + SubTheme.objects.count()
    )
    assert list(ProficiencyLevel.objects.values_list("level", flat=True)) == [1, 2, 3, 4, 5]
    for area in Area.objects.all():
        assert SubTheme.objects.filter(theme__area=area).count() >= 10


def test_iris_follow_the_codes_and_names_have_hindi() -> None:
    framework_load(path=SAMPLE)
    root = Framework.objects.get().iri
    sub = SubTheme.objects.select_related("theme__area").first()
    assert sub is not None
    assert sub.iri == f"{root}/{sub.theme.area.code}/{sub.theme.code}/{sub.code}"
    assert localized(sub.name, "hi") != localized(sub.name, "en")
    assert localized(sub.name, "mai") == localized(sub.name, "en")  # falls back to English


def test_reloading_the_same_file_changes_nothing() -> None:
    framework_load(path=SAMPLE)
    before = list(SubTheme.objects.order_by("pk").values_list("pk", "iri"))
    again = framework_load(path=SAMPLE)
    assert (again.created, again.updated, again.retired) == (0, 0, 0)
    assert list(SubTheme.objects.order_by("pk").values_list("pk", "iri")) == before


def test_a_renamed_entry_keeps_its_iri_and_a_dropped_one_is_retired(tmp_path: Path) -> None:
    framework_load(path=SAMPLE)
    data = sample()
    theme = data["areas"][0]["themes"][0]
    renamed, dropped = theme["subThemes"][0], theme["subThemes"].pop()
    renamed["name"] = {**renamed["name"], "en": "Integrity in public life"}
    kept = SubTheme.objects.get(code=renamed["code"], theme__code=theme["code"])
    result = framework_load(path=write(tmp_path, data))
    assert (result.created, result.updated, result.retired) == (0, 1, 1)
    kept.refresh_from_db()
    assert kept.name["en"] == "Integrity in public life"
    assert SubTheme.objects.get(code=dropped["code"], theme__code=theme["code"]).retired


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (
            lambda d: d["areas"][1]["themes"][0]["subThemes"][0].update(code="Bad Code"),
            "areas[1].themes[0].subThemes[0].code",
        ),
        (
            lambda d: d["areas"][0]["themes"][0]["subThemes"].append(
                dict(d["areas"][0]["themes"][0]["subThemes"][0])
            ),
            "appears twice",
        ),
        (
            lambda d: d["areas"][2].update(name={"hi": "केवल हिन्दी"}),
            "areas[2].name: needs a non-empty English text",
        ),
        (lambda d: d["levels"].pop(), "levels"),
        (lambda d: d["framework"].update(iri="not a url"), "framework.iri"),
        (lambda d: d["areas"][0].update(colour="red"), "areas[0].colour"),
    ],
)
def test_a_bad_file_is_refused_in_one_line_and_nothing_changes(
    tmp_path: Path, break_it: Any, message: str
) -> None:
    framework_load(path=SAMPLE)
    snapshot = list(SubTheme.objects.values_list("pk", "name", "retired"))
    data = sample()
    break_it(data)
    path = write(tmp_path, data)
    with pytest.raises(CompetencyFileError) as error:
        framework_load(path=path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)
    assert "\n" not in str(error.value)
    assert list(SubTheme.objects.values_list("pk", "name", "retired")) == snapshot


def test_broken_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "kcm.json"
    path.write_text('{\n  "framework": {,\n}', encoding="utf-8")
    with pytest.raises(CompetencyFileError, match=rf"^{path}:2: not JSON"):
        framework_load(path=path)


def test_the_command_loads_once_with_if_empty_and_reports_errors(tmp_path: Path) -> None:
    call_command("load_competencies", if_empty=True, verbosity=0)
    count = SubTheme.objects.count()
    assert count >= 40
    call_command("load_competencies", if_empty=True, verbosity=0)
    assert SubTheme.objects.count() == count
    with pytest.raises(CommandError, match="cannot read it"):
        call_command("load_competencies", str(tmp_path / "missing.json"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"or": "ଓଡ଼ିଆ", "hi": "हिंदी", "en": "English"}, "ଓଡ଼ିଆ"),  # the chosen language
        ({"hi": "हिंदी", "en": "English"}, "हिंदी"),  # else the portal's first language
        ({"en": "English", "ta": "தமிழ்"}, "English"),  # else English
        ({"ta": "தமிழ்"}, "தமிழ்"),  # else whatever there is
    ],
    ids=["chosen", "first", "english", "any"],
)
def test_a_name_falls_back_to_the_portals_first_language_before_english(
    settings: Any, value: dict[str, str], expected: str
) -> None:
    from django.utils import translation

    settings.LANGUAGE_CODE = "hi"
    with translation.override("or"):
        assert localized(value) == expected
