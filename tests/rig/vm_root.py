"""The test host's root file system: Debian 12 made by debootstrap, built once per machine.

Why Python rather than a shell script: the root's place comes from the kit's cache
(``KitHome.from_env().cache``), the mirror from :mod:`tests.rig.apt_sources`, and the session
fixture calls :func:`ensure_root` directly; ``python -m tests.rig.vm_root`` builds it by hand.

The root is a fresh server as a data centre hands it out: minbase plus systemd as init, D-Bus,
OpenSSH, Python 3, sudo, CA certificates and iproute2. Nothing the roles install is in it. It
is cached under ``<cache>/vm-root/<ROOT_VERSION>`` (bump the version when the recipe changes)
and each session boots a copy of it (:func:`root_copy`, an overlay), so a test never changes the
cached one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.rig.apt_sources import RELEASE, AptSource, machine_sources
from tests.rig.errors import RigError
from tests.rig.locks import locked

# Bump when anything below changes what the root holds.
ROOT_VERSION = f"debian-{RELEASE}-2"
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "sudo",
    "ca-certificates",
    "iproute2",  # priority "important", so on every real server; Ansible's network facts need it
)
HOSTNAME = "karmayogi-vm"
COMPLETE = ".karmayogi-root-complete"


def ensure_root(cache: Path, *, log: Path | None = None) -> Path:
    """The cached root, built first when missing; safe when two sessions ask at once."""
    base = cache / "vm-root"
    root = base / ROOT_VERSION
    if (root / COMPLETE).is_file():
        return root
    base.mkdir(parents=True, exist_ok=True)
    with locked(base / f"{ROOT_VERSION}.lock"):
        if (root / COMPLETE).is_file():
            return root
        _require("debootstrap", "debootstrap")
        building = base / f"{ROOT_VERSION}.building"
        _remove_tree(building)
        _remove_tree(root)  # a root without its mark is half-built
        _build(building, machine_sources()[0], log or base / f"{ROOT_VERSION}.log")
        (building / COMPLETE).write_text(f"{ROOT_VERSION}\n", encoding="utf-8")
        building.rename(root)
    return root


@contextlib.contextmanager
def root_copy(root: Path, workdir: Path) -> Iterator[Path]:
    """A private, writable view of ``root`` for one boot, removed when the block ends.

    An overlay (the cached root below, this session's changes above) costs nothing to make
    and only what the session wrote to remove; where overlayfs cannot be mounted, a full copy
    (``cp --reflink=auto``) stands in.
    """
    upper, work, merged = workdir / "root-upper", workdir / "root-work", workdir / "root"
    for folder in (upper, work, merged):
        if folder.exists():
            raise RigError(f"{folder}: already exists; a test host's root must start empty")
        folder.mkdir()
    options = f"lowerdir={root},upperdir={upper},workdir={work}"
    overlaid = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], capture_output=True
    )
    try:
        if overlaid.returncode != 0:
            merged.rmdir()
            _run(["cp", "--reflink=auto", "-a", str(root), str(merged)], "copying the root")
        yield merged
    finally:
        if overlaid.returncode == 0:
            unmounted = subprocess.run(["umount", str(merged)], capture_output=True)
            if unmounted.returncode != 0:  # still busy: detach it, so the files can go
                subprocess.run(["umount", "--lazy", str(merged)], capture_output=True)
        for folder in (merged, upper, work):
            _remove_tree(folder)


def configure_copy(
    copy: Path, *, authorized_key: str, sources: Sequence[AptSource], hostname: str = HOSTNAME
) -> None:
    """Make a copy this session's host: its SSH key, its apt sources, its name."""
    ssh = copy / "root" / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    (ssh / "authorized_keys").write_text(authorized_key.strip() + "\n", encoding="utf-8")
    os.chmod(ssh / "authorized_keys", 0o600)
    lines = [f"# Through the test rig's apt proxy ({__name__})", *(s.line() for s in sources)]
    (copy / "etc" / "apt" / "sources.list").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (copy / "etc" / "hostname").write_text(f"{hostname}\n", encoding="utf-8")
    (copy / "etc" / "hosts").write_text(
        f"127.0.0.1 localhost\n127.0.1.1 {hostname}\n::1 localhost ip6-localhost\n",
        encoding="utf-8",
    )


def _build(target: Path, mirror: AptSource, log: Path) -> None:
    started = time.monotonic()
    with log.open("wb") as out:
        command = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            RELEASE,
            str(target),
            mirror.uri,
        ]
        if subprocess.run(command, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
            raise RigError(f"debootstrap failed; its log: {log} (last lines: {_tail(log)})")
    # A server's state as a data centre hands it out; per-session parts come in configure_copy.
    (target / "etc" / "machine-id").write_text("", encoding="utf-8")  # a new one each boot
    (target / "etc" / "apt" / "sources.list").write_text("", encoding="utf-8")
    (target / "etc" / "resolv.conf").write_text("", encoding="utf-8")  # no DNS: no route to one
    sshd = target / "etc" / "ssh" / "sshd_config.d" / "karmayogi-test-host.conf"
    sshd.write_text(
        "# The test host is reached with a key only, and never looks up its callers.\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\n",
        encoding="utf-8",
    )
    # Units that wait for hardware or a network a container never has.
    wants = target / "etc" / "systemd" / "system"
    for unit in ("systemd-networkd-wait-online.service", "getty-static.service"):
        with contextlib.suppress(FileExistsError):
            (wants / unit).symlink_to("/dev/null")
    for cache in (target / "var" / "cache" / "apt" / "archives").glob("*.deb"):
        cache.unlink()
    print(f"built the test host's root in {time.monotonic() - started:.0f} s", file=sys.stderr)


def _remove_tree(path: Path) -> None:
    if path.exists():
        _run(["rm", "-rf", "--one-file-system", str(path)], f"removing {path}")


def _require(command: str, package: str) -> None:
    if shutil.which(command) is None:
        raise RigError(f"{command} is missing: run `make test-deps` (Debian package {package})")


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RigError(f"{what} failed: {done.stderr.strip()[-500:]}")


def _tail(path: Path, lines: int = 5) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return " | ".join(text[-lines:])


if __name__ == "__main__":
    from infra.home import KitHome

    print(ensure_root(KitHome.from_env().cache))
