"""Provider maps for the catalogue rows of this portal's own courses written before 0006: the
provider each live translation names, as ``index_course`` now writes it (issue 19)."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def fill_provider_names(apps: Any, schema_editor: Any) -> None:
    entries = apps.get_model("catalogue", "CatalogueEntry")
    pages = apps.get_model("catalogue", "CoursePage")
    for entry in entries.objects.filter(page__isnull=False).only("pk", "uuid", "provider_name"):
        if entry.provider_name:
            continue
        names = dict(
            pages.objects.filter(translation_key=entry.uuid, alias_of__isnull=True, live=True)
            .exclude(provider="")
            .values_list("locale__language_code", "provider")
        )
        if names:
            entries.objects.filter(pk=entry.pk).update(provider_name=names)


class Migration(migrations.Migration):
    dependencies = [("catalogue", "0006_provider_name")]

    operations = [migrations.RunPython(fill_provider_names, migrations.RunPython.noop)]
