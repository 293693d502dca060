"""The kubernetes target: Helm charts (charts/) on a state's or the nation's cluster.

``render`` writes, beside the files every production target writes, one values file per chart
release: ``helm/tenant-portal/<code>.values.yaml`` for each portal and
``helm/keycloak/<deployment>.values.yaml`` for the deployment's Keycloak. ``deploy`` renders and
runs ``helm upgrade --install`` with them (docs/kubernetes.md).

Secrets live in Kubernetes Secrets, made by the operator or an external-secrets tool; the
rendered files name each as ``secret:<namespace>/<secret>#<key>``, and the values files name
only the Secret and its keys (``existingSecret``).

Where things run: a tenant's portal in the namespace ``karmayogi-<code>``, a deployment's
Keycloak in ``karmayogi-<deployment>``; the operator makes the namespaces (with the Pod
Security labels) and the Secrets before the first deploy.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from infra.errors import KitError
from infra.keycloak.release import KEYCLOAK_VERSION
from infra.render.sizes import SIZES, largest
from infra.render.tenant import RenderedTenant, references
from infra.spec import TenantSpec
from infra.targets.base import Manifest, Progress
from infra.targets.production import (
    KEYCLOAK_BOOTSTRAP_SECRET,
    KEYCLOAK_DB_PASSWORD,
    THEMES_JAR,
    KeycloakSite,
    NotDeployableYet,
    ProductionTarget,
)

CHARTS = Path(__file__).resolve().parents[3] / "charts"
PORTAL_CHART = "tenant-portal"
KEYCLOAK_CHART = "keycloak"
PORTAL_SECRET = "karmayogi-portal"
KEYCLOAK_SECRET = "karmayogi-keycloak"
# The portal image serves static files from here (containers/portal/Containerfile).
STATIC_ROOT = "/app/static"
HEADER = "# Rendered by the Karmayogi kit (karmayogi render --target kubernetes); edits are lost.\n"
_REFERENCE = re.compile(r"^secret:(?P<namespace>[^/]+)/(?P<secret>[^#]+)#(?P<key>.+)$")
# Environment the target reads (docs/kubernetes.md, "Rendering"): where images come from and
# where the portals may connect to outside the cluster.
REGISTRY = "KARMAYOGI_IMAGE_REGISTRY"
DATABASE_CIDR = "KARMAYOGI_K8S_DATABASE_CIDR"
HUB_CIDR = "KARMAYOGI_K8S_HUB_CIDR"
OBJECT_STORAGE_CIDR = "KARMAYOGI_K8S_OBJECT_STORAGE_CIDR"
INGRESS_NAMESPACE = "KARMAYOGI_K8S_INGRESS_NAMESPACE"
INGRESS_CIDR = "KARMAYOGI_K8S_INGRESS_CIDR"
HELM = "KARMAYOGI_HELM"


def namespace_of(name: str) -> str:
    """The namespace of a tenant's portal (its code) or a deployment's Keycloak (its name)."""
    return f"karmayogi-{name}"


def kit_version() -> str:
    try:
        return package_version("karmayogi-kit")
    except PackageNotFoundError:  # pragma: no cover - the kit runs installed
        return "0.0.0"


def split_secrets(
    code: str, settings: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str], str]:
    """A portal's settings without secrets; each secret setting by the key of the one Secret
    holding them; and that Secret's name."""
    plain: dict[str, Any] = {}
    keys: dict[str, str] = {}
    secrets: set[str] = set()

    def key_of(name: str, value: Any) -> bool:
        if not (isinstance(value, dict) and set(value) == {"secretRef"}):
            return False
        match = _REFERENCE.match(str(value["secretRef"]))
        if match is None or match["namespace"] != namespace_of(code):
            raise KitError(f"{code}: secret {value['secretRef']} is not in {namespace_of(code)}")
        secrets.add(match["secret"])
        keys[name] = match["key"]
        return True

    for name, value in settings.items():
        if key_of(name, value):
            continue
        if name == "KARMAYOGI_FEDERATION" and isinstance(value, dict):
            federation = dict(value)
            key_of("KARMAYOGI_FEDERATION_CLIENT_SECRET", federation.pop("clientSecret", None))
            plain[name] = federation
        else:
            plain[name] = value
    if "secretRef" in json.dumps(plain):
        raise KitError(f"{code}: a secret nested in the settings cannot come from a Secret key")
    if len(secrets) > 1:
        raise KitError(f"{code}: the portal's secrets are in several Secrets: {sorted(secrets)}")
    return plain, keys, secrets.pop() if secrets else PORTAL_SECRET


def _secret_key(reference: str) -> str:
    match = _REFERENCE.match(reference)
    if match is None:  # pragma: no cover - reference_of makes them
        raise KitError(f"{reference} is not a Kubernetes Secret reference")
    return match["key"]


class KubernetesTarget(ProductionTarget):
    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(
            "kubernetes",
            "/data",
            "helm upgrade --install",
            env,
            KeycloakSite(
                database_host="karmayogi-postgresql",
                proxy_addresses=("10.0.0.0/8",),
                http_host="0.0.0.0",
            ),
        )

    def reference_of(self, code: str, name: str) -> str:
        keycloak = name in (KEYCLOAK_DB_PASSWORD, KEYCLOAK_BOOTSTRAP_SECRET)
        secret = KEYCLOAK_SECRET if keycloak else PORTAL_SECRET
        return f"secret:{namespace_of(code)}/{secret}#{name.replace('_', '-')}"

    # ---- render ------------------------------------------------------------------------

    def render(self, specs: Sequence[TenantSpec], codes: Sequence[str], out: Path) -> Manifest:
        manifest, rendered = self.render_common(specs, codes, out)
        themes = (out / "keycloak" / "providers" / THEMES_JAR).read_bytes()
        deployment = [s for s in specs if s.deployment_name == rendered[0].spec.deployment_name]
        for tenant in rendered:
            values = self.portal_values(tenant)
            manifest.write_file(
                out,
                f"helm/{PORTAL_CHART}/{tenant.code}.values.yaml",
                HEADER + json.dumps(values, indent=2, ensure_ascii=False) + "\n",
                f"values of {tenant.code}'s release of charts/{PORTAL_CHART} "
                f"(namespace {namespace_of(tenant.code)})",
            )
        name = rendered[0].spec.deployment_name
        manifest.write_file(
            out,
            f"helm/{KEYCLOAK_CHART}/{name}.values.yaml",
            HEADER
            + json.dumps(self.keycloak_values(deployment, themes), indent=2, ensure_ascii=False)
            + "\n",
            f"values of deployment {name!r}'s release of charts/{KEYCLOAK_CHART} "
            f"(namespace {namespace_of(name)})",
        )
        manifest.save(out)
        return manifest

    def _registry(self) -> str:
        return self.env.get(REGISTRY, "karmayogi").rstrip("/")

    def portal_values(self, tenant: RenderedTenant) -> dict[str, Any]:
        spec = tenant.spec
        size = SIZES[spec.spec.deployment.size]
        settings, secret_env, secret = split_secrets(tenant.code, references(tenant.portal))
        settings["KARMAYOGI_STATIC_ROOT"] = STATIC_ROOT
        logo = spec.logo_path
        return {
            "tenant": tenant.code,
            "hub": spec.is_hub,
            "image": {"repository": f"{self._registry()}/portal", "tag": kit_version()},
            "existingSecret": secret,
            "secretEnv": secret_env,
            "settings": settings,
            "logo": {
                "fileName": f"logo{logo.suffix.lower()}",
                "base64": base64.b64encode(logo.read_bytes()).decode("ascii"),
            },
            "workers": {"processes": size.portal_workers, "threads": size.portal_threads},
            "resources": {
                "requests": {"cpu": size.portal_cpu, "memory": size.portal_memory},
                "limits": {"memory": size.portal_memory},
            },
            "autoscaling": {
                "minReplicas": size.portal_replicas,
                "maxReplicas": size.portal_max_replicas,
                "targetCPUUtilizationPercentage": 70,
            },
            "ingress": {
                "className": "nginx",
                "host": spec.spec.domain,
                "tlsSecret": f"tls-{tenant.code}",
            },
            "networkPolicy": {
                "ingressController": {
                    "namespace": self.env.get(INGRESS_NAMESPACE, "ingress-nginx"),
                    "podLabels": {"app.kubernetes.io/name": "ingress-nginx"},
                },
                "egress": self._egress(spec),
            },
            "jobs": {
                "sync": {"enabled": True, "schedule": "*/15 * * * *"},
                "xapi": {"enabled": True, "schedule": "*/5 * * * *"},
                "backup": {"enabled": False, "schedule": "30 2 * * *"},
            },
        }

    def _egress(self, spec: TenantSpec) -> list[dict[str, Any]]:
        """Where a portal may connect besides DNS. Keycloak, the hub and federation peers are
        reached by their public names, so through the ingress controller: its pods when the
        load balancer's address is short-circuited inside the cluster (kube-proxy does), or
        the address range given in ``KARMAYOGI_K8S_INGRESS_CIDR``; a hub run elsewhere by
        ``KARMAYOGI_K8S_HUB_CIDR``."""
        if self.env.get(INGRESS_CIDR):
            ingress: dict[str, Any] = {"cidr": self.env[INGRESS_CIDR]}
        else:
            ingress = {
                "namespace": self.env.get(INGRESS_NAMESPACE, "ingress-nginx"),
                "podLabels": {"app.kubernetes.io/name": "ingress-nginx"},
            }
        egress: list[dict[str, Any]] = [
            {
                "name": "postgresql",
                "to": [{"cidr": self.env.get(DATABASE_CIDR, "10.0.0.0/8")}],
                "ports": [5432],
            },
            {"name": "keycloak", "to": [ingress], "ports": [443]},
        ]
        hub_cidr = self.env.get(HUB_CIDR)
        if spec.hub_code is not None or spec.is_hub:
            # A member reaches its hub; the hub reaches its members (their packages).
            to = {"cidr": hub_cidr} if hub_cidr and not spec.is_hub else ingress
            egress.append(
                {"name": "hub" if not spec.is_hub else "members", "to": [to], "ports": [443]}
            )
        if self.env.get(OBJECT_STORAGE_CIDR):
            storage = {"cidr": self.env[OBJECT_STORAGE_CIDR]}
            egress.append({"name": "objectStorage", "to": [storage], "ports": [443]})
        return egress

    def keycloak_values(self, deployment: Sequence[TenantSpec], themes: bytes) -> dict[str, Any]:
        first = deployment[0]
        name = first.deployment_name
        size_name = largest([s.spec.deployment.size for s in deployment])
        size = SIZES[size_name]
        # A new tenant's theme comes in a new image: the tag names the themes it carries, so
        # adding a tenant changes the tag and rolls Keycloak one pod at a time.
        themes_digest = hashlib.sha256(themes).hexdigest()[:12]
        image_tag = f"{KEYCLOAK_VERSION}-{themes_digest}"
        files: dict[str, str] = {}
        for spec in deployment:
            files[f"{spec.code}.yaml"] = base64.b64encode(spec.source.read_bytes()).decode()
            logo = spec.logo_path
            files[f"branding/{logo.name}"] = base64.b64encode(logo.read_bytes()).decode()
        return {
            "deployment": name,
            "image": {"repository": f"{self._registry()}/keycloak", "tag": image_tag},
            "replicas": max(2, size.keycloak_replicas),
            "heap": size.keycloak_heap,
            "resources": {
                "requests": {"cpu": size.keycloak_cpu, "memory": size.keycloak_memory},
                "limits": {"memory": size.keycloak_memory},
            },
            "hostname": f"https://{first.login_domain}",
            "proxyTrustedAddresses": list(self.site.proxy_addresses),
            "database": {
                "host": self.site.database_host,
                "port": 5432,
                "name": self.site.database_name,
                "username": self.site.database_user,
            },
            "existingSecret": KEYCLOAK_SECRET,
            "secretKeys": {
                "databasePassword": _secret_key(self.reference_of(name, KEYCLOAK_DB_PASSWORD)),
                "bootstrapClientSecret": _secret_key(
                    self.reference_of(name, KEYCLOAK_BOOTSTRAP_SECRET)
                ),
            },
            "ingress": {"className": "nginx", "tlsSecret": f"tls-keycloak-{name}"},
            "realms": {
                "enabled": True,
                "image": {"repository": f"{self._registry()}/portal", "tag": kit_version()},
                "inputKey": "realms-input",
                "files": files,
            },
        }

    # ---- deploy ------------------------------------------------------------------------

    def deploy(self, specs: Sequence[TenantSpec], codes: Sequence[str], progress: Progress) -> Any:
        helm = self._helm_binary()
        if not (CHARTS / PORTAL_CHART / "Chart.yaml").is_file():
            raise KitError(f"the charts are not beside the kit ({CHARTS}): run from a checkout")
        with tempfile.TemporaryDirectory(prefix="karmayogi-k8s-") as scratch:
            out = Path(self.env.get("KARMAYOGI_RENDER_DIR") or scratch)
            out.mkdir(parents=True, exist_ok=True)
            progress(f"rendering {', '.join(codes)} into {out}")
            self.render(specs, codes, out)
            deployment = next(s for s in specs if s.code == codes[0]).deployment_name
            releases = [
                (
                    f"keycloak-{deployment}",
                    KEYCLOAK_CHART,
                    namespace_of(deployment),
                    out / "helm" / KEYCLOAK_CHART / f"{deployment}.values.yaml",
                )
            ] + [
                (
                    f"portal-{code}",
                    PORTAL_CHART,
                    namespace_of(code),
                    out / "helm" / PORTAL_CHART / f"{code}.values.yaml",
                )
                for code in codes
            ]
            for release, chart, namespace, values in releases:
                progress(f"helm upgrade --install {release} (namespace {namespace})")
                _helm(
                    helm,
                    [
                        "upgrade",
                        "--install",
                        release,
                        str(CHARTS / chart),
                        "--namespace",
                        namespace,
                        "--values",
                        str(values),
                        "--wait",
                        "--timeout",
                        self.env.get("KARMAYOGI_HELM_TIMEOUT", "15m"),
                    ],
                    self.env,
                )
        return [release for release, *_ in releases]

    # ---- status ------------------------------------------------------------------------

    def status(self, specs: Sequence[TenantSpec]) -> dict[str, Any]:
        """Each deployment's Keycloak release and each tenant's portal release, as Helm and the
        cluster see them (`helm status -o json`: the release's state and its live resources):
        healthy when the release is deployed, every Deployment has its replicas available and
        no Pod is waiting on an error (CrashLoopBackOff, ImagePullBackOff, ...)."""
        helm = self._helm_binary()
        wanted = [
            (f"keycloak-{name}", "keycloak", namespace_of(name), name)
            for name in sorted({s.deployment_name for s in specs})
        ] + [
            (f"portal-{s.code}", "portal", namespace_of(s.code), s.code)
            for s in sorted(specs, key=lambda s: s.code)
        ]
        releases = [
            release_health(name, kind, namespace, of, _helm_status(helm, name, namespace, self.env))
            for name, kind, namespace, of in wanted
        ]
        return {
            "target": self.name,
            "releases": releases,
            "healthy": all(r["healthy"] for r in releases),
        }

    def logs(self, name: str) -> Path:
        command = (
            "kubectl logs -n karmayogi-DEPLOYMENT deploy/keycloak-DEPLOYMENT"
            if name == "keycloak"
            else f"kubectl logs -n {namespace_of(name)} deploy/portal-{name}"
        )
        raise NotDeployableYet(
            f"on the kubernetes target the logs are the cluster's: {command} (the kit does not "
            "wrap them)"
        )

    def remove(
        self, code: str, specs: Sequence[TenantSpec], tenants: Path, progress: Progress
    ) -> Any:
        raise NotDeployableYet(
            f"the kit does not offboard on kubernetes yet: back {code} up (docs/backup.md), then "
            f"helm uninstall portal-{code} -n {namespace_of(code)}; its database and bucket stay"
        )

    def _helm_binary(self) -> str:
        helm = self.env.get(HELM) or shutil.which("helm")
        if helm is None:
            raise KitError(f"helm is not on PATH: install Helm 3.x or 4.x, or set {HELM}")
        return helm


def _helm_status(
    helm: str, release: str, namespace: str, env: Mapping[str, str]
) -> dict[str, Any] | None:
    """`helm status` of one release with its live resources; None when it is not installed."""
    done = subprocess.run(
        [helm, "status", release, "--namespace", namespace, "--output", "json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        if "not found" in last:
            return None
        raise KitError(f"helm status {release} (namespace {namespace}) failed: {last}")
    status: dict[str, Any] = json.loads(done.stdout)
    return status


def release_health(
    release: str, kind: str, namespace: str, of: str, status: dict[str, Any] | None
) -> dict[str, Any]:
    """One release's line of `karmayogi status --target kubernetes`, from `helm status`."""
    entry: dict[str, Any] = {
        "release": release,
        "kind": kind,
        "of": of,
        "namespace": namespace,
        "state": "not installed",
        "revision": None,
        "last_deployed": None,
        "workloads": [],
        "problems": [],
    }
    if status is None:
        entry["problems"].append(f"{release} is not installed in {namespace}")
        entry["healthy"] = False
        return entry
    info = status.get("info", {})
    entry["state"] = info.get("status", "unknown")
    entry["revision"] = status.get("version")
    entry["last_deployed"] = info.get("last_deployed")
    if entry["state"] != "deployed":
        entry["problems"].append(f"release {entry['state']}: {info.get('description', '')}")
    resources: dict[str, list[dict[str, Any]]] = info.get("resources") or {}
    for key, objects in sorted(resources.items()):
        for item in objects:
            if key.endswith("/Deployment"):
                wanted = item.get("spec", {}).get("replicas", 1)
                available = item.get("status", {}).get("availableReplicas", 0)
                name = item["metadata"]["name"]
                entry["workloads"].append(
                    {"name": name, "replicas": wanted, "available": available}
                )
                if available < wanted:
                    entry["problems"].append(f"{name}: {available} of {wanted} replicas available")
            elif key.endswith("Pod(related)"):
                for pod in item.get("items", []):
                    entry["problems"].extend(_pod_problems(pod))
    # Each chart's one Deployment is named after its release (charts/*/templates/_helpers.tpl).
    if not any(w["name"] == release for w in entry["workloads"]):
        entry["problems"].append(f"Deployment {release} is missing from the release")
    entry["healthy"] = not entry["problems"]
    return entry


def _pod_problems(pod: dict[str, Any]) -> list[str]:
    name = pod.get("metadata", {}).get("name", "?")
    problems = []
    for container in pod.get("status", {}).get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") not in (None, "ContainerCreating", "PodInitializing"):
            problems.append(f"pod {name}: {container.get('name')} {waiting['reason']}")
    return problems


def _helm(helm: str, args: list[str], env: Mapping[str, str]) -> str:
    done = subprocess.run(
        [helm, *args], env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise KitError(f"helm {args[0]} {args[2] if len(args) > 2 else ''} failed: {last}")
    return done.stdout
