"""Both charts installed into a real control plane (etcd, kube-apiserver, controller-manager,
scheduler, kwok's fake nodes) by `karmayogi deploy --target kubernetes`, for two tenants of one
deployment, in namespaces enforcing the ``restricted`` Pod Security Standard; then a
``helm upgrade`` rolls the portal and ``helm rollback`` restores it.

One control plane serves the whole module (it starts in seconds once the tools are built; the
build itself is started in the background once the session has collected a chart test,
tests/conftest.py).
Kubelet and containers do not run here: kwok marks Pods running and ready and completes Job
Pods, so "available" means admitted, scheduled and counted by the controllers, not serving.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.cli import app
from infra.errors import KitError
from infra.home import KitHome
from infra.keycloak.accounts_secret import AccountsSecret
from infra.keycloak.realm_step import ACCOUNTS_SECRET_ENV as ACCOUNTS_ENV
from tests.charts.helm import PORTAL, copy_examples, render, runner, values_of
from tests.rig.kube_cluster import SERVING_CERT, ControlPlane, control_plane

CODES = ("bihar", "rajasthan")
DEPLOYMENT = "north"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def _secret(plane: ControlPlane, namespace: str, name: str, data: dict[str, str]) -> None:
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    plane.create(
        f"/api/v1/namespaces/{namespace}/secrets",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded},
    )


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with control_plane(KitHome.from_env().cache, tmp_path_factory.mktemp("kube")) as started:
        yield started


@pytest.fixture(scope="module")
def deployed(
    plane: ControlPlane, helm: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """What the operator provides (namespaces, Secrets), then `karmayogi deploy`."""
    base = tmp_path_factory.mktemp("deploy")
    folder = copy_examples(base / "tenants")
    for code in CODES:
        _into_north(folder / f"{code}.yaml")
    for namespace in (DEPLOYMENT, *CODES):
        plane.add_namespace(f"karmayogi-{namespace}", RESTRICTED)
    out = base / "rendered"
    env = {"KUBECONFIG": str(plane.kubeconfig), "KARMAYOGI_HELM": str(helm)}
    # The Secrets hold the keys the rendered values name; the operator makes them first.
    render(folder, CODES, out)
    for code in CODES:
        values = values_of(out / "helm" / "tenant-portal" / f"{code}.values.yaml")
        keys = {key: f"test-{key}" for key in values["secretEnv"].values()}
        _secret(plane, f"karmayogi-{code}", values["existingSecret"], keys)
    keycloak = values_of(out / "helm" / "keycloak" / f"{DEPLOYMENT}.values.yaml")
    keys = {key: f"test-{key}" for key in keycloak["secretKeys"].values()}
    keys[keycloak["realms"]["inputKey"]] = "{}"
    _secret(plane, f"karmayogi-{DEPLOYMENT}", keycloak["existingSecret"], keys)
    args = ["deploy", *CODES, "--target", "kubernetes", "--tenants", str(folder), "--out", str(out)]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    return {"out": out, "env": env, "output": result.output, "folder": folder}


def _into_north(spec: Path) -> None:
    """A state spec of the examples, moved into the deployment these tests install."""
    text = spec.read_text(encoding="utf-8")
    text = text.replace("  deployment:\n", f"  deployment:\n    name: {DEPLOYMENT}\n")
    text = text.replace("  identity:\n", "  identity:\n    loginDomain: auth.north.example\n")
    spec.write_text(text, encoding="utf-8")


def _items(plane: ControlPlane, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = plane.get(path)["items"]
    return items


def helm_run(helm: Path, plane: ControlPlane, *args: str) -> str:
    done = subprocess.run(
        [str(helm), "--kubeconfig", str(plane.kubeconfig), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_deploy_installs_keycloak_and_both_portals_and_every_pod_is_admitted_and_scheduled(
    plane: ControlPlane, deployed: dict[str, Any]
) -> None:
    assert "deployed bihar, rajasthan" in deployed["output"]
    expected = {
        f"karmayogi-{DEPLOYMENT}": f"keycloak-{DEPLOYMENT}",
        **{f"karmayogi-{code}": f"portal-{code}" for code in CODES},
    }
    for namespace, name in expected.items():
        deployment = plane.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        status = deployment["status"]
        assert status.get("availableReplicas") == deployment["spec"]["replicas"] >= 1, status
        pods = _items(plane, f"/api/v1/namespaces/{namespace}/pods")
        assert pods
        for pod in pods:
            assert pod["spec"]["nodeName"].startswith("kwok-node-"), pod["metadata"]["name"]
            assert pod["status"]["phase"] in ("Running", "Succeeded"), pod["status"]
        # Nothing refused by admission: no ReplicaSet or Job failed to create a Pod.
        events = _items(plane, f"/api/v1/namespaces/{namespace}/events")
        refused = [e["message"] for e in events if e.get("reason") == "FailedCreate"]
        assert refused == []
    keycloak = plane.get(
        f"/apis/apps/v1/namespaces/karmayogi-{DEPLOYMENT}/deployments/keycloak-{DEPLOYMENT}"
    )
    assert keycloak["spec"]["replicas"] >= 2


def test_the_namespaces_enforce_the_restricted_standard(plane: ControlPlane) -> None:
    """The admitted Pods above passed a real check: a Pod that is not restricted is refused."""
    with plane.client() as client:
        response = client.post(
            "/api/v1/namespaces/karmayogi-bihar/pods",
            json={
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "privileged"},
                "spec": {"containers": [{"name": "c", "image": "debian:12"}]},
            },
        )
    assert response.status_code == 403
    assert 'violates PodSecurity "restricted:latest"' in response.json()["message"]


def test_the_realm_job_keeps_the_kits_accounts_in_its_one_secret_and_reads_no_other(
    plane: ControlPlane, deployed: dict[str, Any]
) -> None:
    """The realm Job's service account (its token as the Job's Pod gets it) may make, read and
    change the accounts' Secret of Keycloak's namespace through the real API server's RBAC,
    and is refused the operator's Secret beside it; a second run finds what the first kept."""
    namespace = f"karmayogi-{DEPLOYMENT}"
    account = f"keycloak-{DEPLOYMENT}-realms"
    (job,) = [
        j
        for j in _items(plane, f"/apis/batch/v1/namespaces/{namespace}/jobs")
        if j["metadata"]["name"] == f"keycloak-{DEPLOYMENT}-realms"
    ]
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account
    (container,) = pod["containers"]
    (named,) = [e["value"] for e in container["env"] if e["name"] == ACCOUNTS_ENV]
    assert named == f"{namespace}/keycloak-{DEPLOYMENT}-accounts"
    token = plane.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )["status"]["token"]
    ca = str(plane.workdir / SERVING_CERT)
    kept = AccountsSecret(*named.split("/"), plane.server, token, ca)
    assert kept.read() is None  # before the first run
    kept.write('{"admin_username": "karmayogi-admin", "first": true}')
    kept.write('{"admin_username": "karmayogi-admin", "first": false}')
    assert kept.read() == '{"admin_username": "karmayogi-admin", "first": false}'
    operator = AccountsSecret(namespace, "karmayogi-keycloak", plane.server, token, ca)
    with pytest.raises(KitError) as refused:
        operator.read()
    assert str(refused.value) == (
        f"secret {namespace}/karmayogi-keycloak: the Kubernetes API refused to read it "
        "(403 Forbidden)"
    )
    assert token not in str(refused.value)


def test_the_migration_hook_job_ran_and_the_cronjobs_carry_their_schedules(
    plane: ControlPlane, deployed: dict[str, Any]
) -> None:
    for code in CODES:
        namespace = f"karmayogi-{code}"
        job = plane.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/portal-{code}-migrate")
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert job["status"].get("succeeded") == 1, job["status"]
        cronjobs = {
            c["metadata"]["name"]: c["spec"]
            for c in _items(plane, f"/apis/batch/v1/namespaces/{namespace}/cronjobs")
        }
        assert {name: spec["schedule"] for name, spec in cronjobs.items()} == {
            f"portal-{code}-sync": "*/15 * * * *",
            f"portal-{code}-xapi": "*/5 * * * *",
        }
        assert {spec["concurrencyPolicy"] for spec in cronjobs.values()} == {"Forbid"}
    realms = plane.get(
        f"/apis/batch/v1/namespaces/karmayogi-{DEPLOYMENT}/jobs/keycloak-{DEPLOYMENT}-realms"
    )
    assert realms["status"].get("succeeded") == 1, realms["status"]


def _portal(plane: ControlPlane) -> dict[str, Any]:
    return plane.get("/apis/apps/v1/namespaces/karmayogi-bihar/deployments/portal-bihar")


def _image(deployment: dict[str, Any]) -> str:
    image: str = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


def test_an_upgrade_rolls_the_deployment_and_a_rollback_restores_it(
    plane: ControlPlane, helm: Path, deployed: dict[str, Any]
) -> None:
    values = deployed["out"] / "helm" / "tenant-portal" / "bihar.values.yaml"
    before = _portal(plane)
    first = _image(before)
    namespace = ["--namespace", "karmayogi-bihar"]
    helm_run(
        helm,
        plane,
        "upgrade",
        "portal-bihar",
        str(PORTAL),
        *namespace,
        "-f",
        str(values),
        "--set",
        "image.tag=9.9.9",
        "--wait",
        "--timeout",
        "5m",
    )
    after = _portal(plane)
    assert _image(after).endswith(":9.9.9")
    assert after["metadata"]["generation"] > before["metadata"]["generation"]
    status = after["status"]
    replicas = after["spec"]["replicas"]
    assert status.get("updatedReplicas") == status.get("availableReplicas") == replicas, status
    # The rollout replaced the Pods: every Pod now runs the new image, in a new ReplicaSet.
    pods = _items(
        plane,
        "/api/v1/namespaces/karmayogi-bihar/pods?labelSelector=app.kubernetes.io/component%3Dweb",
    )
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert live and {p["spec"]["containers"][0]["image"] for p in live} == {_image(after)}
    sets = _items(plane, "/apis/apps/v1/namespaces/karmayogi-bihar/replicasets")
    assert len(sets) == 2
    # The migrations ran again first, with the new image (the pre-upgrade hook).
    job = plane.get("/apis/batch/v1/namespaces/karmayogi-bihar/jobs/portal-bihar-migrate")
    assert job["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":9.9.9")

    helm_run(helm, plane, "rollback", "portal-bihar", "1", *namespace, "--wait", "--timeout", "5m")
    restored = _portal(plane)
    assert _image(restored) == first
    assert restored["status"].get("availableReplicas") == restored["spec"]["replicas"]
    history = json.loads(helm_run(helm, plane, "history", "portal-bihar", *namespace, "-o", "json"))
    assert [h["revision"] for h in history] == [1, 2, 3]
    assert history[-1]["status"] == "deployed"
    # The rollback took the first revision's ReplicaSet back rather than making a third.
    assert len(_items(plane, "/apis/apps/v1/namespaces/karmayogi-bihar/replicasets")) == 2


def test_deploying_into_a_namespace_the_operator_has_not_made_fails_in_one_line(
    plane: ControlPlane, helm: Path, deployed: dict[str, Any], tmp_path: Path
) -> None:
    folder = copy_examples(tmp_path / "tenants")
    env = {"KUBECONFIG": str(plane.kubeconfig), "KARMAYOGI_HELM": str(helm)}
    args = ["deploy", "mauritius", "--target", "kubernetes", "--tenants", str(folder)]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()[-1:]
    assert line.startswith("error: helm upgrade keycloak-mauritius failed:"), result.output
    assert '"karmayogi-mauritius" not found' in line
    releases = helm_run(helm, plane, "list", "--all-namespaces", "-o", "json")
    assert "mauritius" not in releases


def test_status_reads_each_release_and_names_what_is_missing_or_unavailable(
    plane: ControlPlane, helm: Path, deployed: dict[str, Any], tmp_path: Path
) -> None:
    # The cluster's own folder: the two states, with the hub run by someone else.
    folder = tmp_path / "tenants"
    folder.mkdir()
    shutil.copytree(deployed["folder"] / "branding", folder / "branding")

    def add(code: str) -> None:
        text = (deployed["folder"] / f"{code}.yaml").read_text(encoding="utf-8")
        text = text.replace(
            "    hub: karmayogi-bharat\n",
            "    hub: {code: karmayogi-bharat, url: https://learn.karmayogi.example}\n",
        )
        (folder / f"{code}.yaml").write_text(text, encoding="utf-8")

    for code in CODES:
        add(code)
    args = ["status", "--target", "kubernetes", "--tenants", str(folder)]

    result = runner.invoke(app, [*args, "--json"], env=deployed["env"])
    assert result.exit_code == 0, result.output
    releases = {r["release"]: r for r in json.loads(result.output)["releases"]}
    assert sorted(releases) == ["keycloak-north", "portal-bihar", "portal-rajasthan"]
    for release in releases.values():
        assert release["state"] == "deployed" and release["healthy"], release
        (workload,) = release["workloads"]
        assert workload["name"] == release["release"]
        assert workload["available"] == workload["replicas"] >= 1
    history = json.loads(
        helm_run(helm, plane, "history", "portal-bihar", "-n", "karmayogi-bihar", "-o", "json")
    )
    assert releases["portal-bihar"]["revision"] == history[-1]["revision"]
    result = runner.invoke(app, args, env=deployed["env"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "all healthy"

    # A Deployment deleted behind Helm's back, and a tenant of the folder never installed.
    plane.delete("/apis/apps/v1/namespaces/karmayogi-rajasthan/deployments/portal-rajasthan")
    add("mauritius")
    result = runner.invoke(app, args, env=deployed["env"])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1] == "NOT all healthy"
    assert any("Deployment portal-rajasthan is missing from the release" in x for x in lines)
    assert any("portal-mauritius is not installed in karmayogi-mauritius" in x for x in lines)
    bihar = releases["portal-bihar"]["workloads"][0]["replicas"]
    assert any(x.startswith("portal-bihar ") and f"{bihar}/{bihar} available" in x for x in lines)
