"""A Debian 12 server to converge: a copy of the cached root booted with systemd-nspawn.

``booted_vm(workdir)`` gives a :class:`VmHost` whose systemd is PID 1, reached over SSH at an
address of a network namespace the rig made, and whose only route leads to this machine's side
of a veth pair, where the rig serves an apt proxy to the machine's mirror and a file server
(wheelhouse, controller files). Nothing else is reachable from it: it is an offline data
centre's VM in miniature.

Addresses: each host takes one /30 of ``$KARMAYOGI_VM_SUBNET`` (default ``10.213.0.0/24``):
slot N is ``.4N+1`` (this machine) and ``.4N+2`` (the guest), in the namespace ``kyvmN``. A
slot is claimed by creating its namespace, which fails when another session holds it.

Teardown (also after a failed test) stops the container, kills whatever still runs in its
namespace, deletes the namespace (and with it the veth pair) and removes the copy.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.rig.apt_sources import machine_sources
from tests.rig.errors import RigError
from tests.rig.offline import AptProxy, file_server, serving
from tests.rig.vm_root import configure_copy, copy_root, ensure_root

SUBNET_ENV = "KARMAYOGI_VM_SUBNET"
DEFAULT_SUBNET = "10.213.0.0/24"
APT_PROXY_PORT = 3142  # apt-cacher-ng's, so URLs read as operators know them
FILES_PORT = 8080
BOOT_TIMEOUT = 180.0
SSH_OPTIONS = (
    "-F", "/dev/null",
    "-o", "BatchMode=yes",
    "-o", "IdentitiesOnly=yes",
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=5",
)  # fmt: skip


@dataclass(frozen=True)
class VmHost:
    """A booted test host and how to reach it and its sources."""

    name: str
    address: str
    host_address: str
    user: str
    private_key: Path
    apt_proxy_url: str
    wheelhouse_url: str
    files_url: str
    files_dir: Path
    console_log: Path
    root: Path

    def ansible_inventory_vars(self) -> dict[str, str]:
        """The host's variables in an Ansible inventory."""
        return {
            "ansible_host": self.address,
            "ansible_user": self.user,
            "ansible_ssh_private_key_file": str(self.private_key),
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_ssh_common_args": " ".join(SSH_OPTIONS[2:]),  # not -F: Ansible's own
        }

    def ssh_command(self, *remote: str) -> list[str]:
        """``ssh`` to the host as its user, e.g. to get a shell on it while debugging."""
        return ["ssh", *SSH_OPTIONS, "-i", str(self.private_key),
                f"{self.user}@{self.address}", *remote]  # fmt: skip

    def run(
        self, command: str, *, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command on the host; with ``check``, a failure raises with its output."""
        done = subprocess.run(
            self.ssh_command(command), capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise RigError(
                f"on the test host, `{command}` exited {done.returncode}:\n"
                f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        return done


@dataclass(frozen=True)
class _Slot:
    index: int
    host: str
    guest: str
    prefix: int

    @property
    def netns(self) -> str:
        return f"kyvm{self.index}"


def slots(env: Mapping[str, str]) -> list[_Slot]:
    """Every /30 of the rig's subnet, in order."""
    raw = env.get(SUBNET_ENV) or DEFAULT_SUBNET
    try:
        subnet = ipaddress.IPv4Network(raw)
    except ValueError as exc:
        raise RigError(f"{SUBNET_ENV}={raw!r}: not an IPv4 network ({exc})") from None
    if subnet.prefixlen > 30:
        raise RigError(f"{SUBNET_ENV}={raw!r}: needs room for a /30 at least")
    return [
        _Slot(i, str(net.network_address + 1), str(net.network_address + 2), 30)
        for i, net in enumerate(subnet.subnets(new_prefix=30))
    ]


@contextlib.contextmanager
def booted_vm(
    workdir: Path,
    *,
    cache: Path,
    wheelhouse: Path | None = None,
    files: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[VmHost]:
    """Boot a fresh copy of the cached root; everything it took is given back afterwards."""
    env = dict(os.environ) if env is None else env
    root = ensure_root(cache, log=workdir / "debootstrap.log")
    sources = machine_sources()
    with contextlib.ExitStack() as stack:
        slot = _claim_slot(env)
        stack.callback(_remove_netns, slot)
        _wire(slot)

        apt_proxy_url = f"http://{slot.host}:{APT_PROXY_PORT}"
        upstreams = {s.host: s.scheme for s in sources}
        proxy = AptProxy(
            (slot.host, APT_PROXY_PORT), upstreams, cache / "apt-proxy", workdir / "apt-proxy.log"
        )
        stack.enter_context(serving(proxy))
        served = workdir / "served"
        served.mkdir()
        for name, folder in (("wheels", wheelhouse), ("files", files)):
            if folder is not None:
                (served / name).symlink_to(folder.resolve(), target_is_directory=True)
            else:
                (served / name).mkdir()  # a test may put files there while the host runs
        stack.enter_context(serving(file_server((slot.host, FILES_PORT), served)))

        key = workdir / "id_ed25519"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "karmayogi-test", "-f",
             str(key)],
            check=True,
        )  # fmt: skip
        copy = workdir / "root"
        stack.callback(_remove_copy, copy)
        copy_root(root, copy)
        configure_copy(
            copy,
            authorized_key=key.with_suffix(".pub").read_text(encoding="utf-8"),
            sources=[s.through(apt_proxy_url) for s in sources],
        )

        console = workdir / "console.log"
        container = _start(copy, slot, console)
        stack.callback(_stop, container, slot)
        host = VmHost(
            name=slot.netns,
            address=slot.guest,
            host_address=slot.host,
            user="root",
            private_key=key,
            apt_proxy_url=apt_proxy_url,
            wheelhouse_url=f"http://{slot.host}:{FILES_PORT}/wheels/",
            files_url=f"http://{slot.host}:{FILES_PORT}/files/",
            files_dir=served / "files",
            console_log=console,
            root=copy,
        )
        _wait_for_ssh(host, container)
        yield host


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RigError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done


def _addresses_in_use() -> set[str]:
    out = _ip("-j", "-4", "addr", "show").stdout
    return {a["local"] for link in json.loads(out or "[]") for a in link.get("addr_info", [])}


def _claim_slot(env: Mapping[str, str]) -> _Slot:
    in_use = _addresses_in_use()
    for slot in slots(env):
        if {slot.host, slot.guest} & in_use:
            continue
        if _ip("netns", "add", slot.netns, check=False).returncode == 0:
            return slot
    raise RigError(
        f"no free /30 for a test host in {env.get(SUBNET_ENV) or DEFAULT_SUBNET}: "
        f"`ip netns list` shows kyvm* namespaces left by earlier runs (delete them with "
        f"`ip netns del`), or set {SUBNET_ENV} to another range"
    )


def _wire(slot: _Slot) -> None:
    """A veth pair: this machine's end keeps ``slot.host``, the guest's ``slot.guest`` and the
    namespace gets no route but the pair's own /30."""
    outside, inside = f"{slot.netns}h", f"{slot.netns}g"
    _ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", slot.netns)
    _ip("addr", "add", f"{slot.host}/{slot.prefix}", "dev", outside)
    _ip("link", "set", outside, "up")
    _ip("-n", slot.netns, "addr", "add", f"{slot.guest}/{slot.prefix}", "dev", inside)
    _ip("-n", slot.netns, "link", "set", inside, "up")
    _ip("-n", slot.netns, "link", "set", "lo", "up")


def _remove_netns(slot: _Slot) -> None:
    pids = _ip("netns", "pids", slot.netns, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    _ip("netns", "del", slot.netns, check=False)  # takes the veth pair with it


def _start(copy: Path, slot: _Slot, console: Path) -> subprocess.Popen[bytes]:
    with console.open("wb") as out:
        return subprocess.Popen(
            [
                "systemd-nspawn",
                "--directory", str(copy),
                "--machine", slot.netns,
                # No system bus here: neither register with machined nor ask for a scope.
                "--register=no",
                "--keep-unit",
                "--boot",
                f"--network-namespace-path=/run/netns/{slot.netns}",
                # Without it nspawn shows the guest this machine's /sys/class/net, so the
                # guest (and Ansible's facts) would list our interfaces instead of its own.
                "--private-network",
                "--link-journal=no",
                "--resolv-conf=off",
                "--console=read-only",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def _stop(container: subprocess.Popen[bytes], slot: _Slot) -> None:
    if container.poll() is None:
        container.terminate()  # nspawn asks the guest's systemd to power off
        try:
            container.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(container.pid, signal.SIGKILL)
            container.wait(timeout=10)


def _remove_copy(copy: Path) -> None:
    if copy.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(copy)], check=False)


def _wait_for_ssh(host: VmHost, container: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        if container.poll() is not None:
            raise RigError(
                f"the test host's container exited ({container.returncode}) while booting; "
                f"console:\n{_console_tail(host.console_log)}"
            )
        done = subprocess.run(host.ssh_command("true"), capture_output=True, text=True, timeout=30)
        if done.returncode == 0:
            return
        last = done.stderr.strip()
        time.sleep(1)
    raise RigError(
        f"the test host at {host.address} did not answer SSH within {BOOT_TIMEOUT:.0f} s "
        f"(last: {last}); console:\n{_console_tail(host.console_log)}"
    )


def _console_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no console log)"
    return "\n".join(text.splitlines()[-lines:])
