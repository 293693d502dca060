"""Where the keycloak chart's realm Job keeps the kit's accounts
(infra/keycloak/accounts_secret.py): what a Pod without a Kubernetes API, or a malformed name,
gets; the API itself is exercised against a real API server in tests/charts/test_cluster.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.errors import KitError
from infra.keycloak.accounts_secret import AccountsSecret
from infra.keycloak.realm_step import _read_input


def test_a_bad_name_or_no_api_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(KitError) as raised:
        AccountsSecret.in_cluster("accounts", {}, tmp_path)
    assert str(raised.value) == "KARMAYOGI_ACCOUNTS_SECRET: 'accounts' is not <namespace>/<name>"
    with pytest.raises(KitError) as raised:
        AccountsSecret.in_cluster("karmayogi-north/keycloak-north-accounts", {}, tmp_path)
    assert str(raised.value).startswith("KARMAYOGI_ACCOUNTS_SECRET: no Kubernetes API here")
    (tmp_path / "token").write_text("a-token\n", encoding="utf-8")
    found = AccountsSecret.in_cluster(
        "karmayogi-north/keycloak-north-accounts",
        {"KUBERNETES_SERVICE_HOST": "10.96.0.1"},
        tmp_path,
    )
    assert (found.api_url, found.token, str(found)) == (
        "https://10.96.0.1:443",
        "a-token",
        "karmayogi-north/keycloak-north-accounts",
    )
    assert found.ca_file == str(tmp_path / "ca.crt")


def test_in_the_charts_job_the_input_needs_no_accounts_file(tmp_path: Path) -> None:
    given = tmp_path / "input.json"
    given.write_text(
        json.dumps(
            {
                "specs": "/etc/karmayogi/specs",
                "codes": ["bihar"],
                "data_root": "/var/lib/karmayogi",
                "keycloak_url": "http://keycloak-north.karmayogi-north:8080",
                "bootstrap_client_id": "karmayogi-bootstrap",
                "bootstrap_client_secret": "x",
                "secrets": {},
            }
        ),
        encoding="utf-8",
    )
    env = {"KARMAYOGI_ACCOUNTS_SECRET": "karmayogi-north/keycloak-north-accounts"}
    assert _read_input(given, env)["codes"] == ["bihar"]
    with pytest.raises(KitError) as raised:
        _read_input(given, {})
    assert str(raised.value) == f"{given}: missing accounts_file"
