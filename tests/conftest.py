"""Session fixtures: the real services the suite needs, started by the suite itself."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.home import KitHome
from infra.keycloak_runtime import LocalKeycloak


@pytest.fixture(scope="session")
def kit_home(tmp_path_factory: pytest.TempPathFactory) -> KitHome:
    """A kit home of the test session's own; downloads come from the machine's cache."""
    return KitHome(root=tmp_path_factory.mktemp("kit-home"), cache=KitHome.from_env().cache)


@pytest.fixture(scope="session")
def keycloak_dist(kit_home: KitHome) -> Path:
    """The pinned Keycloak release, unpacked (fetched once per machine)."""
    return LocalKeycloak(kit_home, dict(os.environ)).install()


@pytest.fixture(scope="session")
def keycloak(kit_home: KitHome, keycloak_dist: Path) -> Iterator[LocalKeycloak]:
    """A real Keycloak in dev mode, started for the session and stopped after it."""
    kc = LocalKeycloak(kit_home, dict(os.environ))
    kc.start()
    yield kc
    kc.stop()


@pytest.fixture
def kit_env(kit_home: KitHome) -> dict[str, str]:
    """Environment for CLI calls that act on the session's Keycloak."""
    return {"KARMAYOGI_HOME": str(kit_home.root), "KARMAYOGI_CACHE": str(kit_home.cache)}
