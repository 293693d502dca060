"""moto's S3 server, the suite's AWS stand-in (docs/decisions.md, "Stand-ins"), on an address the
caller picks: loopback for this machine's tests, the test host's side of its link for a VM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from infra.net import free_port
from tests.rig.errors import RigError

# Throwaway credentials moto accepts; nothing real is ever reached with them.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class MotoServer:
    endpoint: str
    process: subprocess.Popen[bytes]
    bucket: str = ""

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint, **_boto_credentials())

    def with_bucket(self, bucket: str) -> MotoServer:
        """This server with ``bucket`` made in it."""
        self.client().create_bucket(Bucket=bucket)
        return MotoServer(self.endpoint, self.process, bucket)


@contextmanager
def moto_server(address: str = "127.0.0.1") -> Iterator[MotoServer]:
    """moto's S3 server on a free port of ``address``, stopped (even if paused) at the end."""
    port = free_port(address)
    server = Path(sys.executable).parent / "moto_server"
    process = subprocess.Popen(
        [str(server), "-H", address, "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://{address}:{port}"
    try:
        for _ in range(600):
            try:
                httpx.get(endpoint, timeout=1.0)
                break
            except httpx.TransportError:
                if process.poll() is not None:
                    raise RigError(
                        f"moto_server exited ({process.returncode}) on {endpoint}"
                    ) from None
                time.sleep(0.05)
        else:
            raise RigError(f"moto_server did not answer on {endpoint} within 30 s")
        yield MotoServer(endpoint, process)
    finally:
        process.send_signal(signal.SIGCONT)
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def moto_for_this_process() -> Iterator[MotoServer]:
    """moto's server on loopback, with this process's boto3 pointed at it (its throwaway
    credentials and ``AWS_ENDPOINT_URL``) until the end."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in CREDENTIALS.items():
            patch.setenv(key, value)
        with moto_server() as server:
            patch.setenv("AWS_ENDPOINT_URL", server.endpoint)
            yield server


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }
