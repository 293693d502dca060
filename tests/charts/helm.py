"""What the chart tests share: the built helm, rendering tenants, and reading manifests."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from typer.testing import CliRunner

from infra.cli import app

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "charts"
EXAMPLES = ROOT / "tenants"
PORTAL = CHARTS / "tenant-portal"
KEYCLOAK = CHARTS / "keycloak"
runner = CliRunner()


def copy_examples(target: Path) -> Path:
    shutil.copytree(EXAMPLES, target)
    return target


def render(
    folder: Path, codes: Sequence[str], out: Path, env: dict[str, str] | None = None
) -> Path:
    """``karmayogi render CODES --target kubernetes --out OUT`` of the specs in ``folder``."""
    args = ["render", *codes, "--target", "kubernetes", "--tenants", str(folder), "--out", str(out)]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    return out


def values_of(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    return data


def write_values(path: Path, values: dict[str, Any]) -> Path:
    path.write_text(json.dumps(values, indent=2), encoding="utf-8")
    return path


def run(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, check=False)


def template(
    helm: Path, chart: Path, values: Path, namespace: str = "karmayogi-test"
) -> list[dict[str, Any]]:
    """``helm template`` of ``chart`` with ``values``, hooks included, as documents."""
    done = run(helm, "template", "release", str(chart), "-f", str(values), "-n", namespace)
    assert done.returncode == 0, done.stderr
    return [d for d in YAML(typ="safe").load_all(io.StringIO(done.stdout)) if d]


def of_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] == kind]


def pod_specs(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    specs = []
    for d in documents:
        if d["kind"] in ("Deployment", "Job"):
            specs.append(d["spec"]["template"]["spec"])
        elif d["kind"] == "CronJob":
            specs.append(d["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return specs
