"""The chart tests' helm: built once per machine from the Go module proxy (tests/rig/kube_tools.py);
a test waits here while the session's background build is still making it."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.home import KitHome
from tests.rig import kube_tools


@pytest.fixture(scope="session")
def helm() -> Path:
    return kube_tools.binary(KitHome.from_env().cache, kube_tools.HELM)
