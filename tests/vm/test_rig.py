"""What a converge relies on, checked against the real booted test host (tests/rig/vm.py).

One host serves the whole module: systemd runs it, apt installs through the rig's proxy, pip
installs from the wheelhouse alone, Ansible reaches it, and nothing but this machine's side of
its veth is reachable from it.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from infra.home import KitHome
from tests.rig.apt_sources import machine_sources
from tests.rig.errors import RigError
from tests.rig.vm import APT_CACHE, SUBNET_ENV, VmHost, booted_vm, slots


def test_systemd_is_pid_1_and_the_system_comes_up(vm_host: VmHost) -> None:
    assert vm_host.run("cat /proc/1/comm").stdout.strip() == "systemd"
    state = vm_host.run("systemctl is-system-running --wait", check=False).stdout.strip()
    assert state in ("running", "degraded"), vm_host.run("systemctl --failed", check=False)


def test_apt_installs_and_starts_a_service_through_the_proxy(vm_host: VmHost) -> None:
    # The rig writes sources.list; a converge earlier in the session may have replaced it
    # with deb822 files (karmayogi_apt_sources), through the same proxy.
    sources = vm_host.run(
        "cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null", check=False
    ).stdout
    assert vm_host.apt_proxy_url in sources, sources
    vm_host.run("apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx")
    assert vm_host.run("systemctl is-active nginx").stdout.strip() == "active"
    page = vm_host.run("python3 -c \"import urllib.request as u; print(u.urlopen("
                       "'http://127.0.0.1/').read().decode())\"").stdout  # fmt: skip
    assert "Welcome to nginx" in page
    # Package files are kept, so the next session's install needs no mirror for them.
    kept = KitHome.from_env().cache / APT_CACHE / machine_sources()[0].host
    assert any(kept.rglob("nginx*.deb"))


def test_apt_also_takes_the_proxy_as_acquire_http_proxy(vm_host: VmHost) -> None:
    """The other form operators know from apt-cacher-ng: the mirror's own URLs, by proxy."""
    direct = machine_sources()[0]
    vm_host.run(
        f"mkdir -p /tmp/direct/lists/partial && echo '{direct.line()}' > /tmp/direct/sources.list"
        f" && apt-get update -q -o Acquire::http::Proxy={vm_host.apt_proxy_url}"
        " -o Dir::Etc::SourceList=/tmp/direct/sources.list -o Dir::Etc::SourceParts=/dev/null"
        " -o Dir::State::Lists=/tmp/direct/lists"
    )
    lists = vm_host.run("ls /tmp/direct/lists").stdout
    assert f"{direct.host}_" in lists and "_Packages" in lists, lists


def _connect_from_guest(vm_host: VmHost, address: str, port: int) -> str:
    """``ok`` or the error of a TCP connect from the guest."""
    probe = (
        "import socket,sys\n"
        "try:\n"
        f"    socket.create_connection(({address!r}, {port}), timeout=5).close(); print('ok')\n"
        "except OSError as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    return vm_host.run(f"python3 -c {_quote(probe)}").stdout.strip()


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def test_the_host_reaches_the_rig_and_nothing_else(vm_host: VmHost) -> None:
    mirror = urlsplit(machine_sources()[0].uri)
    mirror_address = socket.gethostbyname(mirror.hostname or "")
    assert _connect_from_guest(vm_host, vm_host.host_address, 3142) == "ok"
    refused = _connect_from_guest(vm_host, mirror_address, mirror.port or 80)
    assert refused != "ok" and "unreachable" in refused.lower()
    # The proxy forwards to this machine's mirrors only: it is no way out either.
    elsewhere = vm_host.run(
        'python3 -c "import urllib.request as u, urllib.error as e\n'
        "try: u.urlopen('" + vm_host.apt_proxy_url + "/pypi.org/simple/')\n"
        'except e.HTTPError as x: print(x.code)"',
    ).stdout.strip()
    assert elsewhere == "403"
    routes = vm_host.run("cat /proc/net/route").stdout.splitlines()[1:]
    destinations = {line.split()[1] for line in routes}
    assert "00000000" not in destinations, routes  # no default route


def test_pip_installs_from_the_wheelhouse_alone(vm_host: VmHost) -> None:
    vm_host.run(
        "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv"
    )
    vm_host.run("rm -rf /opt/rig-venv && python3 -m venv /opt/rig-venv")
    # Plain HTTP on a private address: pip wants the host named as trusted.
    vm_host.run(
        f"/opt/rig-venv/bin/pip install -q --no-index --find-links {vm_host.wheelhouse_url}"
        f" --trusted-host {vm_host.host_address} httpx"
    )
    version = vm_host.run("/opt/rig-venv/bin/python -c 'import httpx; print(httpx.__version__)'")
    assert version.stdout.strip()


@pytest.fixture(scope="module")
def inventory(vm_host: VmHost, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vm-inventory") / "inventory.json"
    hosts = {vm_host.name: vm_host.ansible_inventory_vars()}
    path.write_text(json.dumps({"all": {"hosts": hosts}}), encoding="utf-8")
    return path


def _ansible(inventory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    ansible = Path(sys.executable).parent / "ansible"
    return subprocess.run(
        [str(ansible), "all", "-i", str(inventory), *args],
        capture_output=True,
        text=True,
        cwd=inventory.parent,  # no ansible.cfg of a checkout applies
        timeout=300,
    )


def test_ansible_pings_the_host(inventory: Path) -> None:
    done = _ansible(inventory, "-m", "ansible.builtin.ping")
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"ping": "pong"' in done.stdout


def test_ansible_gathers_the_hosts_facts(inventory: Path, vm_host: VmHost) -> None:
    tree = inventory.parent / "facts"
    done = _ansible(inventory, "-m", "ansible.builtin.setup", "--tree", str(tree))
    assert done.returncode == 0, done.stdout + done.stderr
    facts = json.loads((tree / vm_host.name).read_text(encoding="utf-8"))["ansible_facts"]
    assert facts["ansible_distribution"] == "Debian"
    assert facts["ansible_distribution_major_version"] == "12"
    assert facts["ansible_service_mgr"] == "systemd"
    assert facts["ansible_default_ipv4"] == {}  # no default route: an offline host
    assert vm_host.address in facts["ansible_all_ipv4_addresses"]


class _Failed(Exception):
    pass


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True).stdout
    return {entry["name"] for entry in json.loads(out or "[]")}


def test_a_second_host_boots_beside_the_first_and_leaves_nothing_after_a_failure(
    vm_host: VmHost, tmp_path: Path
) -> None:
    workdir = tmp_path / "second"
    workdir.mkdir()
    with pytest.raises(_Failed), booted_vm(workdir) as second:
        assert second.address != vm_host.address
        assert second.run("cat /proc/1/comm").stdout.strip() == "systemd"
        vm_host.run("true")  # the session's host is still up: two hosts at once
        raise _Failed
    assert second.name not in _netns_names()
    assert not (workdir / "root").exists()
    mounts = Path("/proc/self/mounts").read_text(encoding="utf-8")
    assert str(workdir) not in mounts
    nspawns = subprocess.run(
        ["pgrep", "-f", f"systemd-nspawn.*{workdir}"], capture_output=True, text=True
    )
    assert nspawns.stdout == ""


def test_a_host_that_never_answers_is_reported_with_its_console_and_cleaned_up(
    tmp_path: Path,
) -> None:
    # No time at all to answer: the failure path, whatever the machine's speed.
    with pytest.raises(RigError) as failure, booted_vm(tmp_path, boot_timeout=0):
        pass
    message = str(failure.value)
    assert "did not answer SSH within 0 s" in message and "console:" in message
    name = re.search(r"the test host (kyvm\d+) at", message)
    assert name is not None, message
    assert name.group(1) not in _netns_names()
    assert str(tmp_path) not in Path("/proc/self/mounts").read_text(encoding="utf-8")
    assert not (tmp_path / "root").exists()


def test_a_subnet_that_is_no_network_is_named_in_the_error() -> None:
    with pytest.raises(RigError, match=f"{SUBNET_ENV}='10.213.0.0/33'"):
        slots({SUBNET_ENV: "10.213.0.0/33"})
    assert [s.guest for s in slots({SUBNET_ENV: "10.99.0.0/29"})] == ["10.99.0.2", "10.99.0.6"]
