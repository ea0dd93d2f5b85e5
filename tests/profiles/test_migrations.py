from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection

from profiles.models import WelcomeMail
from tests.helpers.users import bulk_users

existing_users = importlib.import_module("profiles.migrations.0003_welcome_mail_existing_users")


@pytest.mark.django_db
@pytest.mark.any_user_model
def test_the_users_of_before_get_a_suppressed_record_and_never_a_mail():
    users = bulk_users(5)
    # The step uses only the schema editor's connection (SQLite's editor cannot open
    # inside the test's transaction).
    existing_users.suppress_existing_users(apps, SimpleNamespace(connection=connection))
    records = WelcomeMail.objects.order_by("user_id")
    assert sorted(r.user_id for r in records) == sorted(u.pk for u in users)
    assert {(r.status, r.reason, r.attempts) for r in records} == {
        ("suppressed", existing_users.REASON, 0)
    }
