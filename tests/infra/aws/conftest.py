"""moto's S3, KMS, RDS, Secrets Manager and IAM server on loopback, once per test module: the
only AWS stand-in (docs/aws.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.rig.moto import MotoServer, moto_for_this_process


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with moto_for_this_process() as server:
        yield server
