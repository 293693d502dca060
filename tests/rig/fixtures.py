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
- ``rig_chromium_home``: a ``HOME`` whose NSS database trusts the CA, for Chromium.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.rig.ca import CertificateAuthority, python_trust_env
from tests.rig.chromium import nss_home
from tests.rig.names import NameMap


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
