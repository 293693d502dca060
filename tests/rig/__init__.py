"""A test rig with real names and TLS, shared by the production and cross-deployment tests.

DESIGN §10 ("Test rig with real names and TLS"): a CA made by the test session (``ca``),
name resolution the suite controls for each client (``names``, ``chromium``), and a small
TLS-terminating proxy where a target has none of its own (``proxy``). Fixtures are in
``fixtures``.
"""

from __future__ import annotations

from tests.rig.ca import CertificateAuthority, python_trust_env
from tests.rig.chromium import launch_options, nss_home
from tests.rig.errors import RigError
from tests.rig.names import MappedTransport, NameMap
from tests.rig.proxy import Route, TlsProxy

__all__ = [
    "CertificateAuthority",
    "MappedTransport",
    "NameMap",
    "RigError",
    "Route",
    "TlsProxy",
    "launch_options",
    "nss_home",
    "python_trust_env",
]
