"""The image definitions agree with the charts that run them. No container engine runs on
these machines, so the Containerfiles are kept correct by construction: their stages, users,
entry points and ports are read here and compared with what the charts' Pods expect."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from infra.keycloak.release import KEYCLOAK_VERSION
from infra.targets.aws.database import ENGINE_VERSION
from infra.targets.kubernetes import STATIC_ROOT
from infra.targets.production import THEMES_JAR
from tests.charts.helm import CHARTS, KEYCLOAK, PORTAL, ROOT, of_kind, template, values_of

CONTAINERS = ROOT / "containers"
BUILD_TOOLS = ("gcc", "g++", "build-essential", "gettext", "git", "make")
# The PostgreSQL client (pg_dump, pg_restore) each Debian release of the python images has.
POSTGRESQL_CLIENT = {"bookworm": 15, "trixie": 17}


@dataclass
class Stage:
    base: str
    name: str
    lines: list[str] = field(default_factory=list)

    def instructions(self, keyword: str) -> list[str]:
        return [line[len(keyword) + 1 :] for line in self.lines if line.startswith(f"{keyword} ")]


def stages(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """The build arguments and the stages of a Containerfile, continuation lines joined."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [" ".join(x.split()) for x in text.splitlines() if x.strip() and not x.startswith("#")]
    args: dict[str, str] = {}
    found: list[Stage] = []
    for line in lines:
        if line.startswith("FROM "):
            parts = line.split()
            assert len(parts) == 4 and parts[2] == "AS", f"{path}: every stage is named: {line}"
            found.append(Stage(parts[1], parts[3]))
        elif not found and line.startswith("ARG "):
            name, _, value = line[4:].partition("=")
            args[name] = value
        else:
            found[-1].lines.append(line)
    return args, found


def _expand(value: str, args: dict[str, str]) -> str:
    for name, arg in args.items():
        value = value.replace(f"${{{name}}}", arg)
    return value


def test_the_portal_image_is_multi_stage_non_root_and_runs_what_the_chart_runs(
    helm: Path,
) -> None:
    args, (build, run) = stages(CONTAINERS / "portal" / "Containerfile")
    # No build tools and no installing in the final stage: it copies what the build made.
    installs = " ".join(run.instructions("RUN"))
    assert "pip" not in installs
    packages = installs.split("--no-install-recommends", 1)[1].split("&&", 1)[0].split()
    assert packages and not [p for p in packages if p.startswith(BUILD_TOOLS) or "-dev" in p]
    # The backup CronJob's pg_dump, no older than the PostgreSQL it dumps (pg_dump refuses a
    # newer server): the aws target's RDS, the oldest any target runs.
    assert "postgresql-client" in packages
    release = run.base.rsplit("-", 1)[1]
    assert POSTGRESQL_CLIENT[release] >= int(ENGINE_VERSION)
    assert build.base == run.base  # the virtualenv runs on the Python it was made with
    copied = [line.split() for line in run.instructions("COPY")]
    assert all(parts[0] == f"--from={build.name}" for parts in copied)
    assert {parts[-1] for parts in copied} == {"/app/venv", STATIC_ROOT}
    # Static files are collected into the path the kubernetes target's settings name.
    assert f"KARMAYOGI_STATIC_ROOT={STATIC_ROOT}" in " ".join(build.instructions("RUN"))
    # The user is the chart's, by number (runAsNonRoot needs a numeric USER to verify).
    defaults = values_of(PORTAL / "values.yaml")["podSecurity"]
    assert run.instructions("USER") == [f"{defaults['runAsUser']}:{defaults['runAsGroup']}"]
    # The chart's commands resolve in the image: its virtualenv comes first on PATH.
    (env,) = run.instructions("ENV")
    assert "PATH=/app/venv/bin:" in env
    (cmd,) = run.instructions("CMD")
    values = CHARTS / "tenant-portal" / "ci" / "hub-values.yaml"
    documents = template(helm, PORTAL, values)
    (web,) = of_kind(documents, "Deployment")
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert shlex.split(cmd.strip("[]").replace(",", " "))[:2] == container["args"][:2]
    assert [int(p) for p in run.instructions("EXPOSE")] == [
        p["containerPort"] for p in container["ports"]
    ]
    for spec in [
        d["spec"]["jobTemplate"]["spec"]["template"]["spec"] for d in of_kind(documents, "CronJob")
    ]:
        assert spec["containers"][0]["args"][0] in ("python", "sh", "karmayogi")
    assert not args  # nothing hidden in a build argument


def test_the_keycloak_image_is_the_pinned_release_built_with_the_themes_and_non_root(
    helm: Path,
) -> None:
    args, (build, run) = stages(CONTAINERS / "keycloak" / "Containerfile")
    assert args == {"KEYCLOAK_VERSION": KEYCLOAK_VERSION}
    for stage in (build, run):
        assert _expand(stage.base, args) == f"quay.io/keycloak/keycloak:{KEYCLOAK_VERSION}"
    (env,) = build.instructions("ENV")
    assert "KC_DB=postgres" in env and "KC_CACHE_STACK=kubernetes" in env
    (themes,) = build.instructions("COPY")
    assert themes.split() == [
        f"keycloak/providers/{THEMES_JAR}",
        f"/opt/keycloak/providers/{THEMES_JAR}",
    ]
    assert build.instructions("RUN") == ["/opt/keycloak/bin/kc.sh build"]
    assert not run.instructions("RUN")
    defaults = values_of(KEYCLOAK / "values.yaml")["podSecurity"]
    assert run.instructions("USER") == [f"{defaults['runAsUser']}:{defaults['runAsGroup']}"]
    documents = template(helm, KEYCLOAK, CHARTS / "keycloak" / "ci" / "deployment-values.yaml")
    (deployment,) = of_kind(documents, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    (exposed,) = run.instructions("EXPOSE")
    assert sorted(int(p) for p in exposed.split()) == sorted(
        p["containerPort"] for p in container["ports"]
    )
    (entrypoint,) = run.instructions("ENTRYPOINT")
    assert entrypoint == '["/opt/keycloak/bin/kc.sh"]'
    assert container["args"] == ["start", "--optimized"]  # the server kc.sh build made
