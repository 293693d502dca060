"""The test host's mirror is read from the machine's apt sources, in either format."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.rig.apt_sources import AptSource, machine_sources
from tests.rig.errors import RigError


def _etc_apt(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "sources.list.d").mkdir()
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_deb822_and_one_line_sources_both_count_and_the_release_comes_first(
    tmp_path: Path,
) -> None:
    etc = _etc_apt(
        tmp_path,
        {
            "sources.list": "# old style\ndeb [arch=amd64] http://mirror.test/debian-security"
            " bookworm-security main\ndeb-src http://mirror.test/debian bookworm main\n",
            "sources.list.d/debian.sources": "Types: deb\nURIs: http://mirror.test/debian/\n"
            "Suites: bookworm bookworm-updates\nComponents: main contrib\n\n"
            "Types: deb\nURIs: http://other.test/debian\nSuites: trixie\nComponents: main\n",
            "sources.list.d/extra.list.disabled": "deb http://off.test/debian bookworm main\n",
        },
    )
    assert machine_sources(etc) == [
        AptSource("http://mirror.test/debian", ("bookworm", "bookworm-updates"),
                  ("main", "contrib")),
        AptSource("http://mirror.test/debian-security", ("bookworm-security",), ("main",)),
    ]  # fmt: skip


def test_through_a_proxy_keeps_the_mirror_host_in_the_path() -> None:
    source = AptSource("http://mirror.test/debian", ("bookworm",), ("main",))
    assert source.through("http://10.213.0.1:3142").line() == (
        "deb http://10.213.0.1:3142/mirror.test/debian bookworm main"
    )


def test_a_machine_without_a_bookworm_source_is_told_so(tmp_path: Path) -> None:
    etc = _etc_apt(tmp_path, {"sources.list": "deb http://mirror.test/debian trixie main\n"})
    with pytest.raises(RigError, match=r"no 'deb' source for Debian bookworm"):
        machine_sources(etc)
