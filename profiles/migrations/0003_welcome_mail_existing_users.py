"""Every user who exists when welcome-mail records arrive gets one, suppressed.

Deploying the welcome-mail record must never mail the users of before: without
this, the first ``welcome_mails sync`` would give each of them a pending record.
One set-based INSERT ... SELECT (the table is new and empty), in plain SQL on
the historical models, as a migration must.
"""

from typing import Any

from django.conf import settings
from django.db import migrations
from django.utils import timezone

REASON = "the user existed before welcome-mail records (migration profiles.0003)"


def suppress_existing_users(apps: Any, schema_editor: Any) -> None:
    connection = schema_editor.connection
    welcome_mail = apps.get_model("profiles", "WelcomeMail")
    user_model = apps.get_model(settings.AUTH_USER_MODEL)
    qn = connection.ops.quote_name
    now = timezone.now()
    values = {
        "status": "suppressed",
        "due_at": now,
        "attempts": 0,
        "reason": REASON,
        "created_at": now,
        "message_id": "",
    }
    columns = [qn(welcome_mail._meta.get_field(name).column) for name in values]
    params = [
        welcome_mail._meta.get_field(name).get_db_prep_save(value, connection)
        for name, value in values.items()
    ]
    user_column = qn(welcome_mail._meta.get_field("user").column)
    placeholders = ", ".join(["%s"] * len(params))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {qn(welcome_mail._meta.db_table)} ({user_column}, {', '.join(columns)}) "
            f"SELECT u.{qn(user_model._meta.pk.column)}, {placeholders} "
            f"FROM {qn(user_model._meta.db_table)} u",
            params,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("profiles", "0002_welcome_mail"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(suppress_existing_users, migrations.RunPython.noop)]
