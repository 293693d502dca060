"""A supervisor's liveness probe reaches the process at its own address over plain HTTP."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings


@pytest.mark.django_db
@override_settings(ALLOWED_HOSTS=["learn.bihar.example"], SECURE_SSL_REDIRECT=True)
def test_healthz_answers_a_probe_whatever_its_host_and_nothing_else_does() -> None:
    client = Client()
    probe = client.get("/healthz", HTTP_HOST="10.42.0.17:8000")
    assert probe.status_code == 200 and probe.json()["status"] == "ok"
    # Every other path keeps the host check and the HTTPS redirect.
    assert client.get("/readyz", HTTP_HOST="10.42.0.17:8000").status_code == 400
    assert client.get("/", HTTP_HOST="10.42.0.17:8000").status_code == 400
    assert client.get("/healthz/", HTTP_HOST="10.42.0.17:8000").status_code == 400
    redirect = client.get("/courses/", HTTP_HOST="learn.bihar.example")
    assert redirect.status_code == 301
    assert redirect["Location"] == "https://learn.bihar.example/courses/"
