"""CatalogueEntry.origin_name and provider as long as the course record allows (300)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("catalogue", "0004_datestamp"),
    ]

    operations = [
        migrations.AlterField(
            model_name="catalogueentry",
            name="origin_name",
            field=models.CharField(max_length=300),
        ),
        migrations.AlterField(
            model_name="catalogueentry",
            name="provider",
            field=models.CharField(db_index=True, max_length=300),
        ),
    ]
