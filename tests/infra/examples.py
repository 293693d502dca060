"""The example tenant specs under fresh codes and domains, so realms never collide between
tests or runs."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "tenants"
NAMES = ("karmayogi-bharat", "bihar", "rajasthan", "mauritius")


def example_folder(target: Path, suffix: str, names: Iterable[str] = NAMES) -> dict[str, str]:
    """Copy the examples ``names`` into ``target`` as ``<first word>-<suffix>`` (so
    ``karmayogi-bharat`` becomes ``karmayogi-<suffix>``), every reference between them
    renamed and every domain prefixed; their codes in this copy, by example name."""
    names = tuple(names)
    (target / "branding").mkdir(parents=True)
    codes = {name: f"{name.split('-')[0]}-{suffix}" for name in names}
    for name in names:
        text = (EXAMPLES / f"{name}.yaml").read_text(encoding="utf-8")
        for old, new in codes.items():
            text = re.sub(rf"\b{re.escape(old)}\b(?![./])", new, text)
        text = text.replace(f"branding/{codes[name]}.svg", f"branding/{name}.svg")
        text = re.sub(r"domain: (\S+)", rf"domain: {suffix}.\1", text)
        (target / f"{codes[name]}.yaml").write_text(text, encoding="utf-8")
        shutil.copy(EXAMPLES / "branding" / f"{name}.svg", target / "branding" / f"{name}.svg")
    return codes
