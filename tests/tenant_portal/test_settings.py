"""Production settings refuse to start without secrets and pass Django's deploy checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# A realistic production environment: every value valid, every secret present.
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "tenant_portal.settings.production",
    "DJANGO_SECRET_KEY": "k" * 20 + "-production-secret-of-enough-length-and-variety-9f3a",
    "DATABASE_URL": "postgres://portal:db-password-7c1e@127.0.0.1:9/portal",
    "KARMAYOGI_OIDC_CLIENT_SECRET": "oidc-client-secret-52aa",
    "DJANGO_ALLOWED_HOSTS": "learn.bihar.example",
    "KARMAYOGI_TENANT": "bihar",
    "KARMAYOGI_DOMAIN": "learn.bihar.example",
    "KARMAYOGI_PORTAL_URL": "https://learn.bihar.example",
    "KARMAYOGI_OIDC_ISSUER": "https://auth.karmayogi.example/realms/bihar",
    "KARMAYOGI_MEDIA_ROOT": "/var/lib/karmayogi/bihar/media",
}
SECRET_VALUES = (
    PRODUCTION_ENV["DJANGO_SECRET_KEY"],
    "db-password-7c1e",
    PRODUCTION_ENV["KARMAYOGI_OIDC_CLIENT_SECRET"],
)


def manage(env: dict[str, str], *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``python -m tenant_portal.manage`` with ``env`` and none of this process's settings."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "KARMAYOGI_", "AWS_", "DATABASE_URL"))
    }
    return subprocess.run(
        [sys.executable, "-m", "tenant_portal.manage", *args],
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
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
    assert result.stderr.splitlines() == [
        f"settings: {missing}: required setting is missing (production needs it)"
    ]


def test_production_passes_the_deploy_checks_without_warnings() -> None:
    result = manage(PRODUCTION_ENV, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_keeps_database_connections() -> None:
    result = manage(
        PRODUCTION_ENV,
        "shell",
        "-c",
        "from django.conf import settings; d = settings.DATABASES['default']; "
        "print(d['CONN_MAX_AGE'], d['CONN_HEALTH_CHECKS'], d['ENGINE'])",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-3:] == ["600", "True", "django.db.backends.postgresql"]
