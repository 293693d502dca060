"""Session fixtures of the rig, for the production and cross-deployment tests.

Register them once in ``tests/conftest.py`` with ``pytest_plugins = ["tests.rig.fixtures"]``
(pytest allows ``pytest_plugins`` only in the root conftest), or import the functions into a
test module: ``from tests.rig.fixtures import rig_ca_fixture  # noqa: F401``. The functions are
named apart from the fixtures, so a test's ``rig_ca`` argument does not shadow an import.

- ``rig_ca``: the session's CA (``tests.rig.ca.CertificateAuthority``);
- ``rig_names``: the session's ``NameMap``, shared so two tests never map one address twice;
- ``rig_name_map``: a factory for a separate ``NameMap`` (``rig_name_map({"a.test": addr})``),
  for a test that wants names of its own;
- ``rig_trust_env``: environment variables making Python subprocesses trust the CA;
- ``rig_chromium_home``: a ``HOME`` whose NSS database trusts the CA, for Chromium;
- ``vm_wheelhouse``: the kit's wheelhouse (``karmayogi bundle``), cached per pyproject;
- ``vm_host``: a booted Debian 12 test host (``tests.rig.vm.VmHost``) for the session, whose
  only sources are the rig's apt proxy and the wheelhouse (docs/vm.md, "The test host").
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from infra.bundle import build_wheelhouse
from infra.home import KitHome
from tests.rig.ca import CertificateAuthority, python_trust_env
from tests.rig.chromium import nss_home
from tests.rig.names import NameMap
from tests.rig.vm import VmHost, booted_vm


@pytest.fixture(scope="session", name="rig_ca")
def rig_ca_fixture(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    """A CA made for this session; its certificates expire two days later."""
    return CertificateAuthority.create(tmp_path_factory.mktemp("rig-ca"))


@pytest.fixture(scope="session", name="rig_names")
def rig_names_fixture(tmp_path_factory: pytest.TempPathFactory) -> NameMap:
    """The session's name map: tests ``assign`` their names in it (127.0.1.x addresses)."""
    return NameMap(tmp_path_factory.mktemp("rig-names"))


@pytest.fixture(scope="session", name="rig_name_map")
def rig_name_map_fixture(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[Mapping[str, str]], NameMap]:
    """A factory: a new ``NameMap`` with its own hosts file, from name → address."""
    counter = itertools.count()

    def make(names: Mapping[str, str]) -> NameMap:
        return NameMap(tmp_path_factory.mktemp(f"rig-names-{next(counter)}"), names)

    return make


@pytest.fixture(scope="session", name="rig_trust_env")
def rig_trust_env_fixture(rig_ca: CertificateAuthority) -> dict[str, str]:
    """``SSL_CERT_FILE`` and ``REQUESTS_CA_BUNDLE`` for subprocesses: system CAs + the rig's."""
    return python_trust_env(rig_ca)


@pytest.fixture(scope="session", name="rig_chromium_home")
def rig_chromium_home_fixture(
    rig_ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A ``HOME`` for Chromium whose NSS database trusts the rig's CA."""
    return nss_home(rig_ca, tmp_path_factory.mktemp("rig-chromium-home"))


@pytest.fixture(scope="session", name="vm_wheelhouse")
def vm_wheelhouse_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kit and its dependencies as wheels (built once per pyproject, in the kit's cache)."""
    log = tmp_path_factory.mktemp("vm-wheelhouse") / "pip.log"
    with log.open("w", encoding="utf-8") as output:
        return build_wheelhouse(KitHome.from_env().cache, output=output).path


@pytest.fixture(scope="session", name="vm_host")
def vm_host_fixture(
    tmp_path_factory: pytest.TempPathFactory, vm_wheelhouse: Path
) -> Iterator[VmHost]:
    """A Debian 12 host booted for the session (systemd as PID 1), reached over SSH."""
    with booted_vm(
        tmp_path_factory.mktemp("vm-host"),
        cache=KitHome.from_env().cache,
        wheelhouse=vm_wheelhouse,
    ) as host:
        yield host
