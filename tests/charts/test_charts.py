"""The Helm charts, offline: every example tenant's values and every ci scenario lint strictly,
render manifests the Kubernetes schemas accept (strict), and hold the properties a cluster
operator relies on — pinned images, no secret values, narrow network policies, the size
table's bounds, migrations before the web pods — and bad values fail naming the key."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from infra.render.sizes import SIZES
from tenant_portal.settings.contract import secret_names
from tests.charts.helm import (
    CHARTS,
    EXAMPLES,
    KEYCLOAK,
    PORTAL,
    copy_examples,
    of_kind,
    pod_specs,
    render,
    run,
    template,
    values_of,
    write_values,
)

KUBERNETES = "1.37.0"
CODES = sorted(p.stem for p in EXAMPLES.glob("*.yaml"))
SCENARIOS = sorted(CHARTS.glob("*/ci/*-values.yaml"))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each example tenant rendered for Kubernetes, by code."""
    base = tmp_path_factory.mktemp("rendered")
    folder = copy_examples(base / "tenants")
    return {code: render(folder, [code], base / code) for code in CODES}


def releases(rendered: dict[str, Path]) -> list[tuple[Path, Path]]:
    """(chart, values file) of every release the examples render."""
    found = []
    for out in rendered.values():
        found += [(PORTAL, v) for v in sorted((out / "helm" / "tenant-portal").glob("*.yaml"))]
        found += [(KEYCLOAK, v) for v in sorted((out / "helm" / "keycloak").glob("*.yaml"))]
    return found


def test_every_example_tenant_and_ci_scenario_lints_strictly(
    helm: Path, rendered: dict[str, Path]
) -> None:
    cases = releases(rendered) + [(s.parent.parent, s) for s in SCENARIOS]
    assert len(cases) == 2 * len(CODES) + len(SCENARIOS) and len(SCENARIOS) >= 4
    for chart, values in cases:
        done = run(helm, "lint", "--strict", str(chart), "-f", str(values))
        assert done.returncode == 0, f"{values}: {done.stdout}{done.stderr}"


def test_rendered_manifests_pass_the_kubernetes_schemas_strictly(
    helm: Path, rendered: dict[str, Path]
) -> None:
    cases = releases(rendered) + [(s.parent.parent, s) for s in SCENARIOS]
    kinds: set[str] = set()
    for chart, values in cases:
        for document in template(helm, chart, values):
            kubernetes_validate.validate(document, KUBERNETES, strict=True)
            kinds.add(document["kind"])
    assert kinds >= {
        "Deployment",
        "Job",
        "CronJob",
        "Service",
        "Ingress",
        "ConfigMap",
        "ServiceAccount",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "PersistentVolumeClaim",
    }
    # The validator is strict: a field the API does not know is refused, not ignored.
    deployment = of_kind(template(helm, PORTAL, rendered_values(rendered, "bihar")), "Deployment")
    deployment[0]["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(deployment[0], KUBERNETES, strict=True)


def rendered_values(rendered: dict[str, Path], code: str) -> Path:
    return rendered[code] / "helm" / "tenant-portal" / f"{code}.values.yaml"


def test_images_are_pinned_and_never_latest(helm: Path, rendered: dict[str, Path]) -> None:
    for chart, values in releases(rendered):
        for spec in pod_specs(template(helm, chart, values)):
            for container in spec["containers"]:
                name, _, tag = container["image"].rpartition(":")
                assert name and tag and tag != "latest", container["image"]
    bad = copy.deepcopy(values_of(rendered_values(rendered, "bihar")))
    bad["image"]["tag"] = "latest"
    refused = run(
        helm,
        "template",
        "r",
        str(PORTAL),
        "-f",
        str(write_values(rendered["bihar"] / "latest.yaml", bad)),
    )
    assert refused.returncode != 0 and "/image/tag" in refused.stderr


def test_no_secret_value_reaches_the_values_or_the_manifests(
    helm: Path, rendered: dict[str, Path], tmp_path: Path
) -> None:
    """Every secret setting comes from the operator's Secret by reference; the chart makes no
    Secret, and its schema refuses a secret setting among the plain ones."""
    for chart, values in releases(rendered):
        documents = template(helm, chart, values)
        assert not of_kind(documents, "Secret")
        text = json.dumps(documents)
        assert "secretRef" not in text
        for spec in pod_specs(documents):
            for container in spec["containers"]:
                for variable in container.get("env", []):
                    if variable["name"] in secret_names() or variable["name"].startswith(
                        ("KC_DB_PASSWORD", "KC_BOOTSTRAP_ADMIN_CLIENT_SECRET")
                    ):
                        assert set(variable) == {"name", "valueFrom"}, variable
                        assert "secretKeyRef" in variable["valueFrom"]
        for config in of_kind(documents, "ConfigMap"):
            for name in secret_names():
                assert f'"{name}"' not in json.dumps(config.get("data", {})), (values, name)
    bihar = values_of(rendered_values(rendered, "bihar"))
    assert set(bihar["secretEnv"]) == {
        "DATABASE_URL",
        "DJANGO_SECRET_KEY",
        "KARMAYOGI_OIDC_CLIENT_SECRET",
        "KARMAYOGI_FEDERATION_CLIENT_SECRET",
    }
    schema = json.loads((PORTAL / "values.schema.json").read_text(encoding="utf-8"))
    refused = schema["properties"]["settings"]["propertyNames"]["not"]["enum"]
    assert sorted(refused) == sorted(secret_names())
    leaked = copy.deepcopy(bihar)
    leaked["settings"]["DJANGO_SECRET_KEY"] = "a-secret-value"
    done = run(helm, "template", "r", str(PORTAL), "-f", str(write_values(tmp_path / "v", leaked)))
    assert done.returncode != 0
    assert "invalid propertyName 'DJANGO_SECRET_KEY'" in done.stderr
    assert "a-secret-value" not in done.stderr


def test_the_network_policy_lets_in_only_the_ingress_controller_and_out_only_what_is_named(
    helm: Path, rendered: dict[str, Path], tmp_path: Path
) -> None:
    documents = template(helm, PORTAL, rendered_values(rendered, "bihar"))
    (policy,) = of_kind(documents, "NetworkPolicy")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    # Every pod of the release: web, the migration Job and the CronJobs carry these labels.
    selector = spec["podSelector"]["matchLabels"]
    for pod in [d for d in documents if d["kind"] in ("Deployment", "Job")]:
        assert selector.items() <= pod["spec"]["template"]["metadata"]["labels"].items()
    (rule,) = spec["ingress"]
    (source,) = rule["from"]
    assert source["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"
    }
    assert source["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "ingress-nginx"}
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    destinations = []
    for egress in spec["egress"]:
        assert egress.get("to") and egress.get("ports"), egress  # no "anywhere" rule
        for peer in egress["to"]:
            assert peer.get("ipBlock", {}).get("cidr") not in ("0.0.0.0/0", "::/0")
        destinations.append((json.dumps(egress["to"]), sorted(p["port"] for p in egress["ports"])))
    ingress = json.dumps([source])  # Keycloak and the hub, by their public names
    assert [ports for _, ports in destinations] == [[53, 53], [5432], [443], [443]]
    assert [to for to, _ in destinations][2:] == [ingress, ingress]
    assert '"cidr": "10.0.0.0/8"' in destinations[1][0]  # PostgreSQL, where the operator says
    hub = template(helm, PORTAL, rendered_values(rendered, "karmayogi-bharat"))
    (hub_policy,) = of_kind(hub, "NetworkPolicy")
    assert len(hub_policy["spec"]["egress"]) == 4  # DNS, PostgreSQL, Keycloak, its members
    # Object storage, a hub elsewhere: only where the operator names their addresses.
    elsewhere = render(
        copy_examples(tmp_path / "tenants"),
        ["bihar"],
        tmp_path / "out",
        env={
            "KARMAYOGI_K8S_HUB_CIDR": "198.51.100.0/24",
            "KARMAYOGI_K8S_OBJECT_STORAGE_CIDR": "192.0.2.0/24",
        },
    )
    (policy,) = of_kind(
        template(helm, PORTAL, elsewhere / "helm" / "tenant-portal" / "bihar.values.yaml"),
        "NetworkPolicy",
    )
    cidrs = [e["to"][0].get("ipBlock", {}).get("cidr") for e in policy["spec"]["egress"]]
    assert cidrs[-2:] == ["198.51.100.0/24", "192.0.2.0/24"]


@pytest.mark.parametrize("size", list(SIZES))
def test_replicas_and_resources_follow_the_size_table(
    helm: Path, size: str, tmp_path: Path
) -> None:
    folder = copy_examples(tmp_path / "tenants")
    spec = folder / "bihar.yaml"
    spec.write_text(spec.read_text().replace("size: small", f"size: {size}"))
    out = render(folder, ["bihar"], tmp_path / "out")
    portal = template(helm, PORTAL, out / "helm" / "tenant-portal" / "bihar.values.yaml")
    (hpa,) = of_kind(portal, "HorizontalPodAutoscaler")
    table = SIZES[size]  # type: ignore[index]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (
        table.portal_replicas,
        table.portal_max_replicas,
    )
    (web,) = of_kind(portal, "Deployment")
    assert web["spec"]["replicas"] == table.portal_replicas
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"] == {
        "cpu": table.portal_cpu,
        "memory": table.portal_memory,
    }
    assert f"--workers={table.portal_workers}" in container["args"]
    keycloak = template(helm, KEYCLOAK, out / "helm" / "keycloak" / "bihar.values.yaml")
    (kc,) = of_kind(keycloak, "Deployment")
    assert kc["spec"]["replicas"] == max(2, table.keycloak_replicas)  # always clustered
    assert kc["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": table.keycloak_cpu,
        "memory": table.keycloak_memory,
    }


def test_migrations_run_as_a_hook_before_the_web_pods_and_jobs_never_overlap(
    helm: Path, rendered: dict[str, Path]
) -> None:
    documents = template(helm, PORTAL, rendered_values(rendered, "bihar"))
    hooks = {
        d["metadata"]["name"]: d["metadata"]["annotations"]
        for d in documents
        if "helm.sh/hook" in d["metadata"].get("annotations", {})
    }
    (job,) = of_kind(documents, "Job")
    migrate = hooks[job["metadata"]["name"]]
    assert migrate["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][-2:] == ["migrate", "--noinput"]
    # What the Job reads exists before it: hooks of lower weight.
    volumes = job["spec"]["template"]["spec"]["volumes"]
    for name in [v["configMap"]["name"] for v in volumes if "configMap" in v]:
        assert int(hooks[name]["helm.sh/hook-weight"]) < int(migrate["helm.sh/hook-weight"])
    # The web Deployment is no hook: it rolls only after the migration hook succeeded.
    (web,) = of_kind(documents, "Deployment")
    assert "helm.sh/hook" not in web["metadata"].get("annotations", {})
    schedules = {c["metadata"]["name"]: c["spec"] for c in of_kind(documents, "CronJob")}
    assert sorted(schedules) == ["portal-bihar-sync", "portal-bihar-xapi"]
    assert all(s["concurrencyPolicy"] == "Forbid" for s in schedules.values())
    keycloak = template(
        helm, KEYCLOAK, rendered["bihar"] / "helm" / "keycloak" / "bihar.values.yaml"
    )
    (realms,) = of_kind(keycloak, "Job")
    assert realms["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    # It keeps the kit's accounts in one Secret, and may touch no other (RBAC cannot name what
    # is created, so it may create Secrets).
    assert realms["spec"]["template"]["spec"]["serviceAccountName"] == "keycloak-bihar-realms"
    (role,) = of_kind(keycloak, "Role")
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["keycloak-bihar-accounts"],
            "verbs": ["get", "patch"],
        },
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
    ]
    (binding,) = of_kind(keycloak, "RoleBinding")
    assert binding["subjects"][0]["name"] == "keycloak-bihar-realms"


def test_on_aws_keycloaks_own_database_user_is_made_before_it_starts_by_the_administrator(
    helm: Path,
) -> None:
    """The aws scenario: a pre-install/pre-upgrade hook Job, in the portal image, signs in as
    the database's administrator (RDS's master user, rotated) from the Secret and makes the
    user Keycloak signs in as, with the password Keycloak reads; no realm Job runs."""
    documents = template(helm, KEYCLOAK, KEYCLOAK / "ci" / "aws-values.yaml")
    values = values_of(KEYCLOAK / "ci" / "aws-values.yaml")
    (job,) = of_kind(documents, "Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["python", "-m", "infra.keycloak.database_user"]
    image = values["databaseUser"]["image"]
    assert container["image"] == f"{image['repository']}:{image['tag']}"
    env = {e["name"]: e.get("value") or e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    secret = values["existingSecret"]
    assert env["KARMAYOGI_DB_HOST"] == values["database"]["host"]
    assert env["KARMAYOGI_DB_USER"] == values["database"]["username"]
    assert env["KARMAYOGI_DB_PASSWORD"] == {
        "name": secret,
        "key": values["secretKeys"]["databasePassword"],
    }
    assert env["KARMAYOGI_DB_ADMIN_USER"] == {"name": secret, "key": "keycloak-db-admin-username"}
    assert env["KARMAYOGI_DB_ADMIN_PASSWORD"] == {
        "name": secret,
        "key": "keycloak-db-admin-password",
    }
    # Keycloak signs in as that user, with that password.
    (deployment,) = of_kind(documents, "Deployment")
    (keycloak,) = deployment["spec"]["template"]["spec"]["containers"]
    kc = {e["name"]: e.get("value") or e["valueFrom"]["secretKeyRef"] for e in keycloak["env"]}
    assert kc["KC_DB_USERNAME"] == env["KARMAYOGI_DB_USER"]
    assert kc["KC_DB_PASSWORD"] == env["KARMAYOGI_DB_PASSWORD"]


def test_every_pod_meets_the_restricted_pod_security_standard(
    helm: Path, rendered: dict[str, Path]
) -> None:
    for chart, values in releases(rendered) + [(s.parent.parent, s) for s in SCENARIOS]:
        for spec in pod_specs(template(helm, chart, values)):
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            for container in spec["containers"]:
                context = container["securityContext"]
                assert context["allowPrivilegeEscalation"] is False
                assert context["readOnlyRootFilesystem"] is True
                assert context["capabilities"] == {"drop": ["ALL"]}


def _without(values: dict[str, Any], path: str) -> dict[str, Any]:
    changed = copy.deepcopy(values)
    *parents, last = path.split(".")
    node = changed
    for part in parents:
        node = node[part]
    del node[last]
    return changed


def _with(values: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(values)
    *parents, last = path.split(".")
    node = changed
    for part in parents:
        node = node[part]
    node[last] = value
    return changed


BAD_PORTAL = [
    (
        "wrong type",
        lambda v: _with(v, "autoscaling.minReplicas", "two"),
        "/autoscaling/minReplicas",
    ),
    ("wrong type", lambda v: _with(v, "hub", "yes"), "/hub"),
    ("unknown key", lambda v: _with(v, "replicas", 3), "additional properties 'replicas'"),
    ("unknown key", lambda v: _with(v, "ingress.tls", True), "additional properties 'tls'"),
    ("missing", lambda v: _without(v, "existingSecret"), "missing property 'existingSecret'"),
    ("missing", lambda v: _without(v, "image.tag"), "missing property 'tag'"),
    ("bad value", lambda v: _with(v, "jobs.xapi.schedule", "often"), "/jobs/xapi/schedule"),
    (
        "bad value",
        lambda v: _with(v, "jobs.backup.kmsKey", "the state's key"),
        "/jobs/backup/kmsKey",
    ),
    (
        "everyone",
        lambda v: _with(
            v,
            "networkPolicy.egress",
            [{"name": "publicHttps", "to": [{"cidr": "0.0.0.0/0"}], "ports": [443]}],
        ),
        "/networkPolicy/egress/0/to/0/cidr",
    ),
    (
        "except without range",
        lambda v: _with(
            v,
            "networkPolicy.egress",
            [{"name": "hub", "to": [{"namespace": "x", "except": ["10.0.0.0/8"]}], "ports": [1]}],
        ),
        "/networkPolicy/egress/0/to/0",
    ),
]
BAD_KEYCLOAK = [
    ("wrong type", lambda v: _with(v, "database.port", "5432"), "/database/port"),
    ("too few", lambda v: _with(v, "replicas", 1), "/replicas"),
    ("unknown key", lambda v: _with(v, "cache", "local"), "additional properties 'cache'"),
    ("missing", lambda v: _without(v, "hostname"), "missing property 'hostname'"),
    (
        "database user without image",
        lambda v: _with(v, "databaseUser", {"enabled": True}),
        "/databaseUser",
    ),
]


@pytest.mark.parametrize(
    ("chart", "case"),
    [(PORTAL, c) for c in BAD_PORTAL] + [(KEYCLOAK, c) for c in BAD_KEYCLOAK],
    ids=[f"portal-{c[2]}" for c in BAD_PORTAL] + [f"keycloak-{c[2]}" for c in BAD_KEYCLOAK],
)
def test_a_bad_value_fails_rendering_naming_the_key(
    helm: Path, rendered: dict[str, Path], tmp_path: Path, chart: Path, case: Any
) -> None:
    _, change, named = case
    folder = rendered["bihar"] / "helm" / chart.name
    values = values_of(next(folder.glob("*.yaml")))
    bad = write_values(tmp_path / "bad.yaml", change(values))
    for command in (["template", "r"], ["lint", "--strict"]):
        done = run(helm, *command, str(chart), "-f", str(bad))
        assert done.returncode != 0
        assert named in done.stdout + done.stderr, done.stdout + done.stderr


def test_render_writes_each_release_values_and_lists_them_in_the_manifest(
    rendered: dict[str, Path],
) -> None:
    manifest = json.loads((rendered["bihar"] / "manifest.json").read_text(encoding="utf-8"))
    files = {f["path"] for f in manifest["files"]}
    assert {"helm/tenant-portal/bihar.values.yaml", "helm/keycloak/bihar.values.yaml"} <= files
    portal = values_of(rendered_values(rendered, "bihar"))
    assert portal["existingSecret"] == "karmayogi-portal"
    assert portal["ingress"]["host"] == "learn.bihar.example"
    keycloak = values_of(rendered["bihar"] / "helm" / "keycloak" / "bihar.values.yaml")
    assert keycloak["existingSecret"] == "karmayogi-keycloak"
    assert keycloak["hostname"] == "https://auth.learn.bihar.example"
    # The Keycloak image tag names the themes it carries: a new tenant means a new image.
    assert set(keycloak["realms"]["files"]) == {"bihar.yaml", "branding/bihar.svg"}
    secrets = {s["reference"] for s in manifest["secrets"]}
    assert "secret:karmayogi-bihar/karmayogi-keycloak#keycloak-db-password" in secrets


def test_a_new_tenant_in_a_deployment_gives_keycloak_a_new_image_and_a_rolling_update(
    helm: Path, tmp_path: Path
) -> None:
    """Its login theme comes in a new image: the tag names the themes, so it changes."""

    def deployment_of(codes: tuple[str, ...], name: str) -> Path:
        folder = copy_examples(tmp_path / name / "tenants")
        for code in codes:
            spec = folder / f"{code}.yaml"
            text = spec.read_text(encoding="utf-8")
            text = text.replace("  deployment:\n", "  deployment:\n    name: north\n")
            text = text.replace(
                "  identity:\n", "  identity:\n    loginDomain: auth.north.example\n"
            )
            spec.write_text(text, encoding="utf-8")
        return (
            render(folder, ["bihar"], tmp_path / name / "out") / "helm/keycloak/north.values.yaml"
        )

    before = values_of(deployment_of(("bihar",), "before"))
    after_path = deployment_of(("bihar", "rajasthan"), "after")
    after = values_of(after_path)
    assert before["image"]["tag"] != after["image"]["tag"]
    assert after["image"]["tag"].startswith("26.4.7-")
    assert set(after["realms"]["files"]) == {
        "bihar.yaml",
        "rajasthan.yaml",
        "branding/bihar.svg",
        "branding/rajasthan.svg",
    }
    (deployment,) = of_kind(template(helm, KEYCLOAK, after_path), "Deployment")
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_what_a_portal_pod_gets_meets_the_portals_settings_contract(
    helm: Path, rendered: dict[str, Path], tmp_path: Path
) -> None:
    """The settings file the ConfigMap mounts, plus one variable per secretEnv entry, is what
    the portal loads at start: it must satisfy the contract in production."""
    from tenant_portal.settings.contract import load_settings

    for code in CODES:
        documents = template(helm, PORTAL, rendered_values(rendered, code))
        config = next(
            d
            for d in of_kind(documents, "ConfigMap")
            if d["metadata"]["name"].endswith("-settings")
            and "migrate" not in d["metadata"]["name"]
        )
        settings = tmp_path / f"{code}.json"
        settings.write_text(config["data"]["settings.json"], encoding="utf-8")
        (web,) = of_kind(documents, "Deployment")
        environment = {}
        for variable in web["spec"]["template"]["spec"]["containers"][0]["env"]:
            if "value" in variable:
                environment[variable["name"]] = variable["value"]
            else:  # a stand-in for the operator's Secret
                environment[variable["name"]] = (
                    "postgres://portal:pw@db.example:5432/portal"
                    if variable["name"] == "DATABASE_URL"
                    else "a-long-enough-stand-in-for-the-secret-value-0123456789"
                )
        environment["KARMAYOGI_ENV_FILE"] = str(settings)
        loaded = load_settings(environment)
        assert loaded.tenant == code
        assert loaded.settings_module == "tenant_portal.settings.production"
        assert str(loaded.static_root) == "/app/static"  # where the image collected them
        plain = json.loads(config["data"]["settings.json"])
        data_dir = plain["KARMAYOGI_DATA_DIR"]
        (logo,) = [
            d
            for d in of_kind(documents, "ConfigMap")
            if d["metadata"]["name"].endswith("-logo") and "migrate" not in d["metadata"]["name"]
        ]
        assert plain["KARMAYOGI_LOGO"] == f"{data_dir}/branding/{next(iter(logo['binaryData']))}"
        mounts = {
            m["mountPath"] for m in web["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        }
        assert {data_dir, f"{data_dir}/branding", "/etc/karmayogi", "/tmp"} <= mounts


def test_on_eks_traffic_comes_in_from_the_vpc_and_the_pods_take_the_portals_role(
    helm: Path,
) -> None:
    """The aws target's values (ci/aws-values.yaml, as `infra/targets/aws/portal.py` makes
    them): an ALB's ip targets send from the VPC, and IRSA reads the service account."""
    documents = template(helm, PORTAL, PORTAL / "ci" / "aws-values.yaml")
    (policy,) = of_kind(documents, "NetworkPolicy")
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"ipBlock": {"cidr": "10.40.0.0/16"}}]
    # Out: DNS, PostgreSQL in the VPC, and HTTPS to public addresses only (Keycloak and the hub
    # behind internet-facing ALBs, S3, STS): the private ranges and the metadata service stay
    # closed, so a portal reaches no other tenant's pods or databases.
    dns, database, public = policy["spec"]["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert database == {
        "to": [{"ipBlock": {"cidr": "10.40.0.0/16"}}],
        "ports": [{"port": 5432, "protocol": "TCP"}],
    }
    (block,) = public["to"]
    assert block["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(
        block["ipBlock"]["except"]
    )
    assert public["ports"] == [{"port": 443, "protocol": "TCP"}]
    (account,) = of_kind(documents, "ServiceAccount")
    role = "arn:aws:iam::123456789012:role/karmayogi-bihar-production-portal"
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": role}
    # The web pods and the CronJobs (sync, xAPI, backups) run as that account. (The migration
    # hook runs before the account exists and needs only the database.)
    pods = [d["spec"]["template"]["spec"] for d in of_kind(documents, "Deployment")]
    pods += [
        c["spec"]["jobTemplate"]["spec"]["template"]["spec"] for c in of_kind(documents, "CronJob")
    ]
    assert len(pods) >= 3
    assert {pod["serviceAccountName"] for pod in pods} == {"portal-bihar"}
    (ingress,) = of_kind(documents, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "alb"
    annotations = ingress["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/certificate-arn"].startswith("arn:aws:acm:")
    # Without the aws values, the service account carries no annotation.
    bihar = template(helm, PORTAL, PORTAL / "ci" / "state-pvc-backup-values.yaml")
    (plain,) = of_kind(bihar, "ServiceAccount")
    assert "annotations" not in plain["metadata"]


def _backup_pod(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (job,) = [c for c in of_kind(documents, "CronJob") if c["metadata"]["name"].endswith("-backup")]
    pod: dict[str, Any] = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return pod


def test_the_backup_cronjob_backs_up_the_portal_itself_or_what_a_source_file_names(
    helm: Path,
) -> None:
    """On EKS the nightly backup is the portal's own database (`--source portal`: its settings
    and Secret are the pod's), written under the tenant's key; a state that names a
    backup-source file in its Secret gets that file mounted instead."""
    pod = _backup_pod(template(helm, PORTAL, PORTAL / "ci" / "aws-values.yaml"))
    (container,) = pod["containers"]
    assert container["args"] == [
        "karmayogi",
        "backup",
        "--to",
        "s3://karmayogi-bihar-production-media/backups",
        "--source",
        "portal",
        "--keep",
        "14",
        "--s3-kms-key",
        "alias/karmayogi-bihar-production",
    ]
    assert {"DATABASE_URL_FILE", "KARMAYOGI_ENV_FILE"} <= {e["name"] for e in container["env"]}
    assert "backup-source" not in {v["name"] for v in pod["volumes"]}
    pod = _backup_pod(template(helm, PORTAL, PORTAL / "ci" / "state-pvc-backup-values.yaml"))
    (container,) = pod["containers"]
    assert container["args"][4:] == [
        "--source",
        "/etc/karmayogi-backup/source.json",
        "--keep",
        "30",
        "--s3-endpoint",
        "https://objects.bihar.example",
    ]
    (source,) = [v for v in pod["volumes"] if v["name"] == "backup-source"]
    assert source["secret"]["items"] == [{"key": "backup-source", "path": "source.json"}]


def test_a_secret_given_as_a_file_is_mounted_in_every_portal_pod_and_named_by_its_file_setting(
    helm: Path, tmp_path: Path
) -> None:
    """`secretFiles` (the aws target's DATABASE_URL): the key of the Secret is a file the kubelet
    rewrites when the Secret changes, and `<NAME>_FILE` names it (the portal's contract), in the
    web, migration and CronJob pods alike; a setting given both ways is refused."""
    documents = template(helm, PORTAL, PORTAL / "ci" / "aws-values.yaml")
    specs = pod_specs(documents)
    assert len(specs) >= 4
    for spec in specs:
        (volume,) = [v for v in spec["volumes"] if v["name"] == "secret-files"]
        assert volume["secret"] == {
            "secretName": "karmayogi-portal",
            "defaultMode": 0o440,
            "items": [{"key": "database-url", "path": "database-url"}],
        }
        for container in spec["containers"]:
            env = {e["name"]: e for e in container["env"]}
            assert "DATABASE_URL" not in env
            assert env["DATABASE_URL_FILE"]["value"] == "/run/karmayogi/secrets/database-url"
            (mount,) = [m for m in container["volumeMounts"] if m["name"] == "secret-files"]
            assert (mount["mountPath"], mount["readOnly"]) == ("/run/karmayogi/secrets", True)
            assert "subPath" not in mount  # a subPath mount is never rewritten
    values = values_of(PORTAL / "ci" / "aws-values.yaml")
    values["secretEnv"]["DATABASE_URL"] = "database-url"
    refused = run(
        helm, "template", "r", str(PORTAL), "-f", str(write_values(tmp_path / "v.yaml", values))
    )
    assert refused.returncode != 0
    assert "secretEnv.DATABASE_URL: also in secretFiles; give it one way" in refused.stderr
