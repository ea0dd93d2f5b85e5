from django.conf import settings
from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):

    dependencies = [
        ("seeding", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Existing runs recorded no members: False for them, True for every new run.
        migrations.AddField(
            model_name="seedrun",
            name="members_recorded",
            field=models.BooleanField(default=False),
        ),
        migrations.AlterField(
            model_name="seedrun",
            name="members_recorded",
            field=models.BooleanField(default=True),
        ),
        migrations.CreateModel(
            name="SeededUser",
            fields=[
                (
                    "user",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "run",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="members",
                        to="seeding.seedrun",
                    ),
                ),
            ],
        ),
    ]
