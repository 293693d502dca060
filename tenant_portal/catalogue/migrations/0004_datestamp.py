"""CatalogueEntry.datestamp: when the row last changed on this instance (the OAI-PMH datestamp).

Existing rows get the time of the migration (the one-off default below): when they last
changed here is not known, and a datestamp earlier than the truth would let an incremental
harvester miss a change.
"""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("catalogue", "0003_local_name"),
    ]

    operations = [
        migrations.AddField(
            model_name="catalogueentry",
            name="datestamp",
            field=models.DateTimeField(
                auto_now=True, db_index=True, default=django.utils.timezone.now, editable=False
            ),
            preserve_default=False,
        ),
    ]
