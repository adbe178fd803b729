"""PostgreSQL only, as the template's sites migration (it reads a sequence)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "CREATE SEQUENCE orders_number_seq START 1000",
            "DROP SEQUENCE orders_number_seq",
        ),
    ]
