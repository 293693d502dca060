"""The External Secrets Operator's objects of the aws target: a namespace's ``SecretStore``
reading Secrets Manager with one service account's IRSA role (so it reads what that role may,
and nothing else), the ``ExternalSecret``s making a namespace's Secrets from it, and the Pulumi
resource of such a document. The tenant stack and the platform's Keycloak use them alike."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

API = "external-secrets.io/v1"
STORE = "karmayogi-secrets-manager"
# The operator re-reads each secret this often: RDS's rotation of a database password reaches
# the namespace's Secret within this time (and the pods' mounted files a minute later).
REFRESH = "5m"


def secret_store(namespace: str, account: str, region: str) -> dict[str, Any]:
    """The ``SecretStore`` of ``namespace``: Secrets Manager read as the service account
    ``account`` (its IRSA role)."""
    return {
        "apiVersion": API,
        "kind": "SecretStore",
        "metadata": {"name": STORE, "namespace": namespace},
        "spec": {
            "provider": {
                "aws": {
                    "service": "SecretsManager",
                    "region": region,
                    "auth": {"jwt": {"serviceAccountRef": {"name": account}}},
                }
            }
        },
    }


def external_secret(
    name: str,
    namespace: str,
    data: list[dict[str, Any]],
    composed: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The ``ExternalSecret`` making the Secret ``name`` of ``namespace`` from the namespace's
    store: each item of ``data`` a ``secretKey`` and the ``remoteRef`` it is read from, and each
    key of ``composed`` from its template (Go templates over those keys, engine v2), merged in."""
    target: dict[str, Any] = {"name": name, "creationPolicy": "Owner"}
    if composed:
        target["template"] = {"engineVersion": "v2", "mergePolicy": "Merge", "data": composed}
    return {
        "apiVersion": API,
        "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "refreshInterval": REFRESH,
            "secretStoreRef": {"kind": "SecretStore", "name": STORE},
            "target": target,
            "data": data,
        },
    }


def resource(
    name: str, kind: str, document: pulumi.Input[dict[str, Any]], opts: pulumi.ResourceOptions
) -> k8s.apiextensions.CustomResource:
    """The Pulumi resource of one of these documents (``kind``), which may be known only once
    other resources are (the database's address)."""
    made = pulumi.Output.from_input(document)
    return k8s.apiextensions.CustomResource(
        name,
        api_version=API,
        kind=kind,
        metadata=made.apply(lambda d: d["metadata"]),
        spec=made.apply(lambda d: d["spec"]),
        opts=opts,
    )
