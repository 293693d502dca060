"""`karmayogi bundle`: the wheelhouse an offline server installs the kit from.

It fills the machine's cache, so after the first build a call only rebuilds the kit's own
wheel. (The VM tests install from a wheelhouse made for Debian 12's Python instead:
tests/vm/conftest.py.)
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from infra.bundle import wheelhouse_key
from infra.cli import app
from infra.home import KitHome


def test_bundle_lists_the_kit_and_its_dependencies_as_wheels() -> None:
    cache = KitHome.from_env().cache
    result = CliRunner().invoke(app, ["bundle", "--json"], env={"KARMAYOGI_CACHE": str(cache)})
    assert result.exit_code == 0, result.output
    house = json.loads(result.stdout)
    folder = Path(house["path"])
    assert folder.is_relative_to(cache)
    assert house["key"] == wheelhouse_key(Path(__file__).parents[2] / "pyproject.toml")
    names = {wheel.split("-")[0].lower() for wheel in house["wheels"]}
    assert {"karmayogi_kit", "django", "wagtail", "httpx", "gunicorn", "psycopg"} <= names
    assert all(name.endswith(".whl") for name in house["wheels"])
    assert sorted(p.name for p in folder.glob("*.whl")) == house["wheels"]
