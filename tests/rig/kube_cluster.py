"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok's fake nodes, built by :mod:`tests.rig.kube_tools`.

Everything a cluster does short of running containers is real: the API server validates and
admits (Pod Security included), the controllers make ReplicaSets, Pods and Jobs, the
scheduler places Pods on nodes, and kwok plays the kubelet of each fake node (marks Pods
running and ready, completes a Job's Pods, removes deleted ones) — it never starts a
container. Every process listens on a free loopback port; :func:`control_plane` stops them all.

Every client (helm, the controllers, kwok, the tests) authenticates with one client certificate
in ``system:masters`` from a CA made for this control plane, authorised by RBAC; the API
server's serving certificate is the self-signed one it makes itself, and the clients trust
exactly that certificate.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.rig import kube_tools
from tests.rig.errors import RigError

START_TIMEOUT = 120.0
# The serving certificate the API server makes itself in its --cert-dir (self-signed, for
# 127.0.0.1 and localhost); the clients trust it alone.
SERVING_CERT = "apiserver-certs/apiserver.crt"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ControlPlane:
    workdir: Path
    server: str
    kubeconfig: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def client(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.workdir / SERVING_CERT))
        context.load_cert_chain(self.workdir / "admin.crt", self.workdir / "admin.key")
        return httpx.Client(base_url=self.server, verify=context, timeout=30.0)

    def get(self, path: str) -> dict[str, Any]:
        with self.client() as client:
            response = client.get(path)
            response.raise_for_status()
            data: dict[str, Any] = response.json()
            return data

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.client() as client:
            response = client.post(path, json=body)
            if response.status_code >= 400:
                raise RigError(f"POST {path}: {response.status_code} {response.text[:500]}")
            data: dict[str, Any] = response.json()
            return data

    def delete(self, path: str) -> None:
        with self.client() as client:
            response = client.delete(path)
            if response.status_code >= 400:
                raise RigError(f"DELETE {path}: {response.status_code} {response.text[:500]}")

    def wait_for(self, what: str, check: Any, timeout: float = START_TIMEOUT) -> Any:
        """Poll ``check()`` until it returns something true; its last value, or RigError."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self.assert_running()
            with contextlib.suppress(httpx.HTTPError):
                last = check()
                if last:
                    return last
            time.sleep(0.5)
        raise RigError(f"the control plane: {what} did not happen in {timeout:.0f} s ({last!r})")

    def assert_running(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                log = self.workdir / f"{name}.log"
                tail = log.read_text(errors="replace").splitlines()[-5:]
                raise RigError(f"{name} exited ({process.returncode}); {log}: {' | '.join(tail)}")

    def add_node(self, name: str, zone: str) -> None:
        self.create(
            "/api/v1/nodes",
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {"kwok.x-k8s.io/node": "fake"},
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "topology.kubernetes.io/zone": zone,
                        "type": "kwok",
                    },
                },
                "status": {
                    "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                    "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                },
            },
        )

    def add_namespace(self, name: str, labels: dict[str, str]) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        body["metadata"]["labels"] = labels  # type: ignore[index]
        self.create("/api/v1/namespaces", body)
        # The controller-manager gives each namespace its default ServiceAccount, which the
        # ServiceAccount admission plugin wants before a Pod may run under it.
        self.wait_for(
            f"the default ServiceAccount of {name}",
            lambda: self.get(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
        )


@contextlib.contextmanager
def control_plane(cache: Path, workdir: Path, nodes: int = 3) -> Iterator[ControlPlane]:
    """Start the control plane (waiting for the tools' builds first), yield it, stop it."""
    etcd = kube_tools.binary(cache, kube_tools.ETCD)
    kube = kube_tools.ensure(cache, kube_tools.KUBERNETES) / "bin"
    kwok_dir = kube_tools.ensure(cache, kube_tools.KWOK)
    workdir.mkdir(parents=True, exist_ok=True)
    api_port, etcd_port, peer_port = free_port(), free_port(), free_port()
    server = f"https://127.0.0.1:{api_port}"
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "test",
                        "cluster": {
                            "server": server,
                            "certificate-authority": str(workdir / SERVING_CERT),
                        },
                    }
                ],
                "users": [
                    {
                        "name": "admin",
                        "user": {
                            "client-certificate": str(workdir / "admin.crt"),
                            "client-key": str(workdir / "admin.key"),
                        },
                    }
                ],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
                "current-context": "test",
            }
        ),
        encoding="utf-8",
    )
    sa_key = workdir / "service-account.key"
    _certificates(workdir, sa_key)
    plane = ControlPlane(workdir, server, kubeconfig)

    def start(name: str, command: list[str]) -> None:
        log = (workdir / f"{name}.log").open("wb")
        plane.processes[name] = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    try:
        start(
            "etcd",
            [
                str(etcd),
                "--name=test",
                f"--data-dir={workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=test=http://127.0.0.1:{peer_port}",
                "--listen-metrics-urls=",
                "--quota-backend-bytes=1073741824",
            ],
        )
        plane.wait_for(
            "etcd's health",
            lambda: httpx.get(f"http://127.0.0.1:{etcd_port}/health").status_code == 200,
        )
        start(
            "kube-apiserver",
            [
                str(kube / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={workdir / 'apiserver-certs'}",
                f"--client-ca-file={workdir / 'ca.crt'}",
                "--authorization-mode=RBAC",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc",
                # Virtual addresses the API server only allocates; nothing routes to them.
                "--service-cluster-ip-range=10.96.0.0/16",
                "--enable-priority-and-fairness=false",
                "--endpoint-reconciler-type=none",
            ],
        )

        def ready() -> bool:
            if not (workdir / SERVING_CERT).is_file():
                return False
            with plane.client() as client:
                return client.get("/readyz").status_code == 200

        plane.wait_for("the API server's readiness", ready)
        common = [f"--kubeconfig={kubeconfig}", "--leader-elect=false"]
        start(
            "kube-controller-manager",
            [
                str(kube / "kube-controller-manager"),
                *common,
                f"--service-account-private-key-file={sa_key}",
                "--use-service-account-credentials=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--concurrent-deployment-syncs=10",
            ],
        )
        start(
            "kube-scheduler",
            [
                str(kube / "kube-scheduler"),
                *common,
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
            ],
        )
        stages = sorted((kwok_dir / "stages").glob("*.yaml"))
        start(
            "kwok",
            [
                str(kwok_dir / "bin" / "kwok"),
                f"--kubeconfig={kubeconfig}",
                "--manage-all-nodes=true",
                "--cidr=127.100.0.0/16",
                "--node-ip=127.0.0.1",
                f"--server-address=127.0.0.1:{free_port()}",
                *(f"--config={stage}" for stage in stages),
            ],
        )
        for index in range(nodes):
            plane.add_node(f"kwok-node-{index}", zone=f"zone-{index % 2}")
        plane.wait_for(
            f"{nodes} ready nodes",
            lambda: (
                sum(
                    any(
                        c["type"] == "Ready" and c["status"] == "True"
                        for c in n.get("status", {}).get("conditions", [])
                    )
                    for n in plane.get("/api/v1/nodes")["items"]
                )
                == nodes
            ),
        )
        yield plane
    finally:
        for process in reversed(list(plane.processes.values())):
            if process.poll() is None:
                process.terminate()
        for process in plane.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _certificates(workdir: Path, sa_key: Path) -> None:
    """The control plane's CA, the clients' certificate (``system:masters``) and the key that
    signs ServiceAccount tokens."""

    def openssl(*args: str) -> None:
        done = subprocess.run(["openssl", *args], cwd=workdir, capture_output=True, text=True)
        if done.returncode != 0:
            raise RigError(f"openssl {args[0]} failed: {done.stderr.strip()[-300:]}")

    openssl("genrsa", "-out", str(sa_key), "2048")
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=karmayogi-test-kubernetes-ca",
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "admin.key", "-out", "admin.csr",
        "-subj", "/O=system:masters/CN=karmayogi-test-admin",
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", "admin.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "admin.crt",
    )  # fmt: skip
