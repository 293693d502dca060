"""Session fixtures: the real services the suite needs, started by the suite itself."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.home import KitHome
from infra.targets.local.keycloak import LocalKeycloak
from tests.postgres import PostgresServer, running_postgres
from tests.rig.names import local_address_env

# The CA, names and Chromium trust of the production and cross-deployment tests (tests/rig).
pytest_plugins = ["tests.rig.fixtures"]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start building the chart tests' Go tools (helm, etcd, Kubernetes, kwok) in the
    background as soon as the session knows it runs them: a cold build takes 15 to 30 minutes,
    and the tests that need a tool wait on its lock (tests/rig/kube_tools.py).
    A filtered run without chart tests starts nothing. Under pytest-xdist every worker
    collects the whole suite, so only the first starts it (a second would only wait on the
    same locks)."""
    if os.environ.get("PYTEST_XDIST_WORKER", "gw0") != "gw0":
        return
    charts = Path(__file__).resolve().parent / "charts"
    if not any(charts in Path(str(item.path)).parents for item in session.items):
        return
    from tests.rig.kube_tools import start_background

    start_background(KitHome.from_env().cache)


# Under parallel workers (`make test`: pytest-xdist) each test file runs whole on one worker,
# so module rigs start once. These groups keep files together on one worker because their
# session rigs would collide across workers (docs/decisions.md, "Parallel test workers").
SERIAL_GROUPS: dict[str, tuple[str, ...]] = {
    # One VM host per session (netns and veth names), the converge's own host, the wheelhouse.
    "vm": ("tests/vm/",),
    # The three deployments' TLS proxy on 127.0.1.40-45:443.
    "federation": ("tests/federation/",),
    # The production deployment's session rig: Keycloak and its TLS proxy on 127.0.1.20:443.
    "production": ("tests/production/",),
}
# Handed out first, longest first, so the other worker fills in around them: the groups and
# the longest files (kit homes' portals keep apart by `local_address_env`, tests/rig/names.py).
FIRST = ("vm", "federation", "tests/infra/test_up_product.py", "production")
# Run last: they wait for the Go tools a cold machine builds while the rest of the suite runs.
LAST = ("tests/charts/",)


def _group(nodeid: str) -> str:
    for group, prefixes in SERIAL_GROUPS.items():
        if nodeid.startswith(prefixes):
            return group
    return nodeid.split("::", 1)[0]


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's scope scheduling with our scopes: a file, or a group of SERIAL_GROUPS. (Not
    `--dist loadgroup` with marks: xdist 3.8 marks a group by editing the test's id, which
    pytest 9.2 no longer lets it do, so the groups are silently lost; pytest-xdist#1386.)"""
    from xdist.scheduler import LoadScopeScheduling

    class FileAndGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid)

    return FileAndGroupScheduling(config, log)


# Where each worker spent its time, by scope (a file or a group): the critical path of a
# parallel run, printed at its end (docs/decisions.md, "Parallel test workers").
_SPENT: dict[tuple[str, str], float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    node = getattr(report, "node", None)  # set on the controller for a worker's report
    if node is not None:
        key = (node.gateway.id, _group(report.nodeid))
        _SPENT[key] = _SPENT.get(key, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _SPENT:
        return
    terminalreporter.section("time per worker (setup, call and teardown of its tests)")
    for worker in sorted({w for w, _ in _SPENT}):
        scopes = sorted(((t, s) for (w, s), t in _SPENT.items() if w == worker), reverse=True)
        total = sum(t for t, _ in scopes)
        top = ", ".join(f"{s} {t:.0f} s" for t, s in scopes[:6])
        terminalreporter.write_line(f"{worker}: {total:.0f} s in {len(scopes)} scopes; {top}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a worker, the order the scheduler hands out scopes: FIRST in its order, then the
    rest as collected, the chart tests last (a stable sort)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    rank = {scope: index for index, scope in enumerate(FIRST)}

    def order(item: pytest.Item) -> int:
        if item.nodeid.startswith(LAST):
            return len(rank) + 1
        return rank.get(_group(item.nodeid), len(rank))

    items.sort(key=order)


@pytest.fixture(scope="session")
def kit_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kit's wheel, built once a session (the vm target's renders take it by
    KARMAYOGI_KIT_WHEEL rather than building their own)."""
    from infra.targets.vm import VmTarget

    dist = tmp_path_factory.mktemp("kit-wheel")
    return VmTarget(dict(os.environ))._kit_wheel(dist)


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
    return {
        "KARMAYOGI_HOME": str(kit_home.root),
        "KARMAYOGI_CACHE": str(kit_home.cache),
        **local_address_env(),
    }


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """The suite's own PostgreSQL: a private cluster on loopback, stopped after the session."""
    with running_postgres(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture(scope="session")
def django_db_modify_db_settings(request: pytest.FixtureRequest, postgres: PostgresServer) -> None:
    """Point Django's default database at the session's PostgreSQL before test DBs are made."""
    from django.conf import settings
    from django.db import connections

    # Update in place: django.db.connections holds these very dicts.
    settings.DATABASES["default"].update(
        {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "karmayogi",
            "USER": postgres.user,
            "PASSWORD": postgres.password,
            "HOST": postgres.host,
            "PORT": str(postgres.port),
        }
    )
    # A connection Django already built from the old settings keeps its backend: drop it.
    with contextlib.suppress(AttributeError):
        del connections["default"]
    # pytest-django's own hook names the test database from NAME, so it runs after the update.
    request.getfixturevalue("django_db_modify_db_settings_parallel_suffix")
