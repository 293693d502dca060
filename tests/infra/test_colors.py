"""WCAG contrast of the portal's colour pairs, and the warning `validate` gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.cli import app
from infra.render.colors import WHITE, accessible_palette, contrast, shade_until, text_pair

EXAMPLES = Path(__file__).resolve().parents[2] / "tenants"


@pytest.mark.parametrize(
    ("a", "b", "ratio"),
    [("#ffffff", "#000000", 21.0), ("#777777", "#ffffff", 4.48), ("#767676", "#ffffff", 4.54)],
)
def test_contrast_matches_the_wcag_formula(a: str, b: str, ratio: float) -> None:
    assert contrast(a, b) == pytest.approx(ratio, abs=0.01)


@pytest.mark.parametrize(
    "colour", ["#8b1e3f", "#f2a900", "#00a05a", "#777777", "#ffff00", "#0000ff"]
)
def test_every_text_pair_meets_aa(colour: str) -> None:
    pair = text_pair(colour)
    assert contrast(pair.background, pair.text) >= 4.5


def test_shading_goes_just_far_enough() -> None:
    shaded = shade_until("#3388ff", WHITE, target=7.0)
    assert contrast(shaded, WHITE) >= 7.0
    one_step_back = shade_until("#3388ff", WHITE, target=6.9)
    assert contrast(one_step_back, WHITE) < 7.05


def test_a_light_primary_gets_darker_links_and_a_warning() -> None:
    palette = accessible_palette("#ffcc00", "#1f3c88")
    assert palette.primary == "#ffcc00" and palette.on_primary == "#000000"
    assert palette.link != "#ffcc00" and contrast(palette.link, WHITE) >= 4.5
    assert len(palette.warnings) == 1 and "links use" in palette.warnings[0]


def test_the_examples_need_no_shading() -> None:
    for primary, accent in [("#8b1e3f", "#f2a900"), ("#1f3c88", "#f47b20"), ("#b5441b", "#e0a526")]:
        assert accessible_palette(primary, accent).warnings == ()


def test_validate_warns_about_a_colour_it_shades(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "tenants")
    spec = tmp_path / "tenants" / "bihar.yaml"
    spec.write_text(spec.read_text().replace('primary: "#8B1E3F"', 'primary: "#FFCC00"'))
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "tenants")])
    assert result.exit_code == 0
    assert result.stderr.startswith(f"warning {spec}: spec.branding.colors.primary #ffcc00: ")
    assert "links use" in result.stderr
