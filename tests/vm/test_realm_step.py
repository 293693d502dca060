"""The realm step's entry point refuses bad input in one line, naming the file and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.keycloak.realm_step import main


def test_a_missing_or_broken_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nothing.json"
    assert main([str(missing)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: {missing}: cannot read the realm step's input (No such file or directory)"
    )
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    assert main([str(broken)]) == 1
    assert capsys.readouterr().err.strip().startswith(f"error: {broken}: not JSON")
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"specs": "/x", "codes": []}), encoding="utf-8")
    assert main([str(partial)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {partial}: missing data_root, keycloak_url")
    assert len(err.splitlines()) == 1
