"""A backup of a real portal database brings back a course and a learner's certificate
(issue 14, item 4): the portal's own tables on the suite's PostgreSQL, dumped and restored by
the kit's PostgreSQL source as a VM runs it."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from psycopg import sql

from infra.backup import make_backup, restore_backup
from infra.backup.sources import Database, PortalData, PostgresSource
from infra.backup.stores import FolderStore
from tenant_portal.catalogue.models import CatalogueEntry, CoursePage
from tenant_portal.learning.models import Certificate, Enrolment
from tests.postgres import PostgresServer
from tests.tenant_portal.learning import add_course, prepare_site
from tests.tenant_portal.test_learning import finish, signed_in

# Committed rows: pg_dump reads them from its own connection.
pytestmark = pytest.mark.django_db(transaction=True)

LOGO = b"<svg xmlns='http://www.w3.org/2000/svg'/>"


@pytest.fixture
def keycloak_database(postgres: PostgresServer) -> str:
    name = f"keycloak_{uuid.uuid4().hex[:8]}"
    postgres.create_database(name)
    with psycopg.connect(postgres.url(name), autocommit=True) as conn:
        conn.execute("CREATE TABLE user_entity (username text PRIMARY KEY)")
        conn.execute("INSERT INTO user_entity VALUES ('sita')")
    yield name
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_a_course_and_a_learner_s_certificate_come_back_after_a_restore(
    postgres: PostgresServer, keycloak_database: str, tmp_path: Path
) -> None:
    course = add_course(prepare_site(), "notes")
    finish(signed_in("sita"), course)
    certificate = Certificate.objects.get()
    media = tmp_path / "media"
    (media / "images").mkdir(parents=True)
    (media / "images" / "cover.svg").write_bytes(LOGO)
    portal = PortalData(Database(postgres.url(connection.settings_dict["NAME"])), media)
    source = PostgresSource(
        "bharat", {"bihar": portal}, Database(postgres.url(keycloak_database)), dict(os.environ)
    )
    store = FolderStore(tmp_path / "backups")
    entry = make_backup(source, store, lambda _: None)

    # Disaster: the certificate, the enrolment and the course deleted, the media lost.
    Certificate.objects.all().delete()
    Enrolment.objects.all().delete()
    for page in CoursePage.objects.filter(slug="notes"):  # the course and its translation
        page.delete()
    assert not CatalogueEntry.objects.filter(page=course.id).exists()
    (media / "images" / "cover.svg").unlink()
    connection.close()  # the portal's connection would hold locks pg_restore must take

    restore_backup(source, store, entry.name, lambda _: None)
    titles = set(CoursePage.objects.filter(slug="notes").values_list("title", flat=True))
    assert titles == {"Noting and drafting notes", "टिप्पण और प्रारूपण notes"}
    assert course.title in titles
    restored = Certificate.objects.get(id=certificate.id)
    assert restored.learner_name == "Sita Verma"
    assert restored.enrolment.entry.page_id == course.id
    verify = Client().get(reverse("verify_certificate", args=[certificate.id]))
    assert verify.status_code == 200 and "Sita Verma" in verify.content.decode()
    assert (media / "images" / "cover.svg").read_bytes() == LOGO
