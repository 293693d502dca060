"""Production settings refuse to start without secrets and pass Django's deploy checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "tenant_portal.settings.production",
    "DJANGO_SECRET_KEY": "k" * 20 + "-production-secret-of-enough-length-and-variety-9f3a",
    "DATABASE_URL": "postgres://portal:unused@127.0.0.1:9/portal",
    "KARMAYOGI_OIDC_CLIENT_SECRET": "client-secret",
    "DJANGO_ALLOWED_HOSTS": "learn.bihar.example",
    "KARMAYOGI_PORTAL_URL": "https://learn.bihar.example",
}


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "KARMAYOGI_"))}
    return subprocess.run(
        [sys.executable, "-m", "tenant_portal.manage", *args],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize(
    "missing",
    ["DJANGO_SECRET_KEY", "DATABASE_URL", "KARMAYOGI_OIDC_CLIENT_SECRET", "DJANGO_ALLOWED_HOSTS"],
)
def test_production_refuses_to_start_without_a_secret(missing: str) -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    result = manage(env, "check")
    assert result.returncode != 0
    assert f"{missing} is not set; production needs it" in result.stderr.strip().splitlines()[-1]
    assert PRODUCTION_ENV["DJANGO_SECRET_KEY"] not in result.stderr


def test_production_passes_the_deploy_checks_without_warnings() -> None:
    result = manage(PRODUCTION_ENV, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_keeps_database_connections() -> None:
    result = manage(
        PRODUCTION_ENV,
        "shell",
        "-c",
        "from django.conf import settings; print(settings.DATABASES['default']['CONN_MAX_AGE'])",
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip().splitlines()[-1]) >= 60
