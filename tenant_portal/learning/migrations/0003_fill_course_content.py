"""Give every course published before the content model its first content version.

Enrolments keep pointing at their catalogue rows, and lessons done and quiz attempts at lesson
ids; the content is read from the same live pages (the lead page first) with the same block
ids, so every learner's progress counts in the new model as it did before. Rows are written
with this migration's own historical models; a course that already has content is left alone,
so running it twice changes nothing.
"""

import os

from django.conf import settings
from django.db import migrations
from django.urls import reverse

from tenant_portal.learning.content import content_from_streams


def _document_facts(apps):
    Document = apps.get_model("wagtaildocs", "Document")
    direct = getattr(settings, "WAGTAILDOCS_SERVE_METHOD", None) == "direct"

    def facts(ids):
        found = Document.objects.in_bulk(list(ids))
        return {
            pk: {
                "id": pk,
                "title": document.title,
                "url": document.file.url
                if direct
                else reverse("wagtaildocs_serve", args=[pk, os.path.basename(document.file.name)]),
                "file_extension": os.path.splitext(document.file.name)[1].lstrip(".").lower(),
                "size": document.file_size,
            }
            for pk, document in found.items()
        }

    return facts


def fill_content(apps, schema_editor):
    CatalogueEntry = apps.get_model("catalogue", "CatalogueEntry")
    CoursePage = apps.get_model("catalogue", "CoursePage")
    CourseVersion = apps.get_model("learning", "CourseVersion")
    CourseLesson = apps.get_model("learning", "CourseLesson")
    facts = _document_facts(apps)
    has_content = CourseVersion.objects.values("entry_id")
    for entry in CatalogueEntry.objects.filter(page__isnull=False).exclude(pk__in=has_content):
        pages = list(
            CoursePage.objects.filter(
                translation_key=entry.uuid, alias_of__isnull=True, live=True
            )
            .select_related("locale")
            .order_by("id")
        )
        pages.sort(key=lambda page: page.pk != entry.page_id)  # the lead page first
        if not pages or pages[0].pk != entry.page_id:
            continue
        content = content_from_streams(
            [
                (page.locale.language_code, getattr(page.modules, "raw_data", page.modules))
                for page in pages
            ],
            facts,
        )
        version = CourseVersion.objects.create(
            entry=entry, number=1, source="page", languages=list(content.languages)
        )
        CourseLesson.objects.bulk_create(
            CourseLesson(
                version=version,
                lesson=lesson.id,
                position=position,
                kind=lesson.kind,
                module=lesson.module,
                content=lesson.content,
            )
            for position, lesson in enumerate(content.lessons)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("learning", "0002_course_content"),
        ("catalogue", "0005_provider_length"),
        ("wagtaildocs", "0014_alter_document_file_size"),
    ]

    operations = [migrations.RunPython(fill_content, migrations.RunPython.noop)]
