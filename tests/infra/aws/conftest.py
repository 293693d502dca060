"""moto's S3, KMS, RDS, Secrets Manager and IAM server on loopback, once per test module: the
only AWS stand-in (docs/aws.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.rig.moto import CREDENTIALS, MotoServer
from tests.rig.moto import moto_server as start_moto_server


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in CREDENTIALS.items():
            patch.setenv(key, value)
        with start_moto_server() as server:
            patch.setenv("AWS_ENDPOINT_URL", server.endpoint)
            yield server
