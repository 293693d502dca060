"""The Kubernetes tools of the chart tests, built from the Go module proxy once per machine.

helm, kwok (with its stage files), etcd and kube-apiserver, kube-controller-manager and
kube-scheduler are built into ``<cache>/kube-tools/<tool>-<version>/`` (``bin/`` and, for kwok,
``stages/``), keyed by version; the mark file ``COMPLETE`` says a folder is whole. Each tool
builds under its own lock, so two sessions asking at once build it once and the second waits.
Go's module and build caches live beside them (``<cache>/kube-tools/go/``), so a fresh machine
downloads and compiles once. Each build logs to ``<cache>/kube-tools/<tool>-<version>.log``.

The cold build takes 15 to 30 minutes on two cores, so the suite starts it in the
background once the session has collected a chart test (:func:`start_background`, from
``tests/conftest.py``) and
the tests that need a tool wait on its lock (:func:`ensure`). ``python -m tests.rig.kube_tools``
builds them all by hand and prints where they are.

Versions are the ones the machine's package list approves (DESIGN.md §9, "Go-built tools"):
etcd and Kubernetes carry ``replace`` directives, so ``go install`` refuses them and they are
built from a small wrapper module made here, with each Kubernetes staging module ``k8s.io/X``
replaced by the published ``k8s.io/X`` of the same release.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from tests.rig.errors import RigError
from tests.rig.locks import locked

HELM_VERSION = "v4.3.2"
KWOK_VERSION = "v0.8.0"
ETCD_VERSION = "v3.7.3"
KUBERNETES_VERSION = "v1.37.2"
STAGING_VERSION = "v0.37.2"  # the published k8s.io/X modules of KUBERNETES_VERSION
KWOK_STAGES = ("node/fast", "node/heartbeat", "pod/fast")
COMPLETE = "COMPLETE"
ROOT = Path(__file__).resolve().parents[2]  # the checkout: `-m tests.rig.kube_tools` runs here


@dataclass(frozen=True)
class Tool:
    name: str
    version: str
    binaries: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"


HELM = Tool("helm", HELM_VERSION, ("helm",))
KWOK = Tool("kwok", KWOK_VERSION, ("kwok",))
ETCD = Tool("etcd", ETCD_VERSION, ("etcd",))
KUBERNETES = Tool(
    "kubernetes",
    KUBERNETES_VERSION,
    ("kube-apiserver", "kube-controller-manager", "kube-scheduler"),
)
# helm first: the offline chart tests need only it; the control plane's parts after it.
TOOLS = (HELM, KWOK, ETCD, KUBERNETES)


def tools_dir(cache: Path) -> Path:
    return cache / "kube-tools"


def built(cache: Path, tool: Tool) -> Path | None:
    """The tool's folder when it is whole, else None (never waits)."""
    folder = tools_dir(cache) / tool.key
    return folder if (folder / COMPLETE).is_file() else None


def ensure(cache: Path, tool: Tool) -> Path:
    """The tool's folder, built first when missing; waits while another process builds it."""
    done = built(cache, tool)
    if done is not None:
        return done
    base = tools_dir(cache)
    base.mkdir(parents=True, exist_ok=True)
    with locked(base / f"{tool.key}.lock"):
        done = built(cache, tool)
        if done is not None:
            return done
        folder = base / tool.key
        building = base / f"{tool.key}.building"
        for stale in (building, folder):
            if stale.exists():
                shutil.rmtree(stale)
        (building / "bin").mkdir(parents=True)
        log = base / f"{tool.key}.log"
        started = time.monotonic()
        with log.open("w", encoding="utf-8") as out:
            out.write(f"building {tool.key}\n")
            out.flush()
            _BUILDERS[tool.name](building, _go_env(base), out)
            out.write(f"built {tool.key} in {time.monotonic() - started:.0f} s\n")
        for binary in tool.binaries:
            if not (building / "bin" / binary).is_file():
                raise RigError(f"building {tool.key} made no {binary}; its log: {log}")
        (building / COMPLETE).write_text(f"{tool.key}\n", encoding="utf-8")
        building.rename(folder)
        return folder


def binary(cache: Path, tool: Tool, name: str | None = None) -> Path:
    """One built binary of ``tool`` (waits for its build)."""
    return ensure(cache, tool) / "bin" / (name or tool.binaries[0])


def ensure_all(cache: Path) -> dict[str, Path]:
    return {tool.name: ensure(cache, tool) for tool in TOOLS}


def missing(cache: Path) -> list[Tool]:
    return [tool for tool in TOOLS if built(cache, tool) is None]


def start_background(cache: Path) -> subprocess.Popen[bytes] | None:
    """Start building every missing tool in a detached process; None when all are built.

    The process outlives the test session if it must (a cold build is long); the locks keep a
    second one, or a test calling :func:`ensure`, from building the same tool again.
    """
    if not missing(cache):
        return None
    base = tools_dir(cache)
    base.mkdir(parents=True, exist_ok=True)
    with (base / "background.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.rig.kube_tools"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


# ---- builders ---------------------------------------------------------------------------


def _build_helm(target: Path, env: dict[str, str], log: TextIO) -> None:
    major = HELM_VERSION.split(".")[0]
    _go(["install", f"helm.sh/helm/{major}/cmd/helm@{HELM_VERSION}"], env, log, target)


def _build_kwok(target: Path, env: dict[str, str], log: TextIO) -> None:
    _go(["install", f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}"], env, log, target)
    module = _download(f"sigs.k8s.io/kwok@{KWOK_VERSION}", env, log)
    stages = target / "stages"
    stages.mkdir()
    for stage in KWOK_STAGES:
        source = Path(module["Dir"]) / "kustomize" / "stage" / stage
        files = sorted(p for p in source.glob("*.yaml") if p.name != "kustomization.yaml")
        if not files:
            raise RigError(f"kwok {KWOK_VERSION} has no stage files in kustomize/stage/{stage}")
        for file in files:
            (stages / f"{stage.replace('/', '-')}-{file.name}").write_bytes(file.read_bytes())


def _build_etcd(target: Path, env: dict[str, str], log: TextIO) -> None:
    module = target / "src"
    module.mkdir()
    (module / "go.mod").write_text(
        "module karmayogi.test/etcd\n\ngo 1.25\n\n"
        f"require go.etcd.io/etcd/server/v3 {ETCD_VERSION}\n",
        encoding="utf-8",
    )
    (module / "main.go").write_text(
        "// The etcd server, as its own main package does it.\npackage main\n\n"
        'import (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\n'
        "func main() { etcdmain.Main(os.Args) }\n",
        encoding="utf-8",
    )
    _go(["mod", "tidy"], env, log, cwd=module)
    _go(["build", "-o", str(target / "bin" / "etcd"), "."], env, log, cwd=module)
    shutil.rmtree(module)


def _build_kubernetes(target: Path, env: dict[str, str], log: TextIO) -> None:
    upstream = _download(f"k8s.io/kubernetes@{KUBERNETES_VERSION}", env, log)
    staging = sorted(
        set(
            re.findall(
                r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/",
                Path(upstream["GoMod"]).read_text(encoding="utf-8"),
                flags=re.MULTILINE,
            )
        )
    )
    if not staging:
        raise RigError(f"k8s.io/kubernetes {KUBERNETES_VERSION}: its go.mod names no staging")
    commands = [f"k8s.io/kubernetes/cmd/{name}" for name in KUBERNETES.binaries]
    module = target / "src"
    module.mkdir()
    replaces = "".join(f"\t{name} => {name} {STAGING_VERSION}\n" for name in staging)
    (module / "go.mod").write_text(
        "module karmayogi.test/kubernetes\n\ngo 1.25\n\n"
        f"require k8s.io/kubernetes {KUBERNETES_VERSION}\n\nreplace (\n{replaces})\n",
        encoding="utf-8",
    )
    imports = "".join(f'\t_ "{command}"\n' for command in commands)
    (module / "tools.go").write_text(
        "//go:build tools\n\n// The commands this module builds.\npackage tools\n\n"
        f"import (\n{imports})\n",
        encoding="utf-8",
    )
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    stamps = [
        f"-X {package}.{name}={value}"
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for name, value in (
            ("gitVersion", KUBERNETES_VERSION),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
        )
    ]
    _go(["mod", "tidy"], env, log, cwd=module)
    _go(
        [
            "build",
            "-ldflags",
            " ".join(["-s", "-w", *stamps]),
            "-o",
            f"{target / 'bin'}/",
            *commands,
        ],
        env,
        log,
        cwd=module,
    )
    shutil.rmtree(module)


_BUILDERS = {
    HELM.name: _build_helm,
    KWOK.name: _build_kwok,
    ETCD.name: _build_etcd,
    KUBERNETES.name: _build_kubernetes,
}


def _go_env(base: Path) -> dict[str, str]:
    go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
    if go is None:
        raise RigError("the Go toolchain (go) is missing: the chart tests build helm with it")
    env = dict(os.environ)
    env.update(
        {
            "PATH": f"{Path(go).parent}{os.pathsep}{env.get('PATH', '')}",
            "GOPATH": str(base / "go" / "path"),
            "GOCACHE": str(base / "go" / "cache"),
            "GOFLAGS": "-mod=mod -buildvcs=false",
            "GOTOOLCHAIN": env.get("GOTOOLCHAIN", "local"),
            "CGO_ENABLED": "0",
        }
    )
    return env


def _go(
    args: list[str],
    env: dict[str, str],
    log: TextIO,
    target: Path | None = None,
    *,
    cwd: Path | None = None,
) -> None:
    if target is not None:
        env = {**env, "GOBIN": str(target / "bin")}
    log.write(f"$ go {' '.join(args)}\n")
    log.flush()
    done = subprocess.run(["go", *args], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RigError(f"`go {args[0]} {args[-1]}` failed; its log: {log.name}")


def _download(module: str, env: dict[str, str], log: TextIO) -> dict[str, str]:
    log.write(f"$ go mod download -json {module}\n")
    log.flush()
    done = subprocess.run(
        ["go", "mod", "download", "-json", module], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        log.write(done.stdout + done.stderr)
        raise RigError(f"downloading {module} failed; its log: {log.name}")
    info: dict[str, str] = json.loads(done.stdout)
    return info


if __name__ == "__main__":
    from infra.home import KitHome

    started = time.monotonic()
    for name, folder in ensure_all(KitHome.from_env().cache).items():
        print(f"{name}: {folder}")
    print(f"kube tools ready in {time.monotonic() - started:.0f} s", file=sys.stderr)
