"""profiles.sql: what the insert-if-missing statement reads, by the database's own accounting."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connections, transaction

from profiles.models import Profile
from profiles.services import profile_defaults, profiles_create_missing
from profiles.sql import insert_missing_sql
from tests.profiles.plans import rows_read

User = get_user_model()

pytestmark = pytest.mark.django_db


def test_a_batch_reads_only_its_own_range_of_profiles():
    """Regression: PostgreSQL scanned every profile for each batch (quadratic over a backfill).

    Only PostgreSQL's planner made that mistake; elsewhere this holds the same bound."""
    User.objects.bulk_create([User(username=f"u{i}") for i in range(22_000)])
    pks = sorted(User.objects.values_list("pk", flat=True))
    profiles_create_missing(using="default", first_pk=pks[0], last_pk=pks[19_999])
    connection = connections["default"]
    # SQLite checks for an existing profile only under a limit.
    limit = 1_000 if connection.vendor == "sqlite" else None
    sql, params = insert_missing_sql(
        connection, values=profile_defaults(), first_pk=pks[20_000], last_pk=pks[-1], limit=limit
    )
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            steps = [row[-1] for row in cursor.fetchall()]
            assert not [step for step in steps if step.startswith("SCAN p")], steps
        else:
            assert profile_rows_read(cursor, sql, params) <= 4 * 2_000
        transaction.set_rollback(True)


def profile_rows_read(cursor, sql, params):
    """Rows of the profile table one statement reads, by the server's own accounting."""
    if cursor.db.vendor == "postgresql":
        # Statistics as autovacuum would leave them after the inserts.
        cursor.execute(f"ANALYZE {Profile._meta.db_table}, {User._meta.db_table}")
    return rows_read(cursor, sql, params, table=Profile._meta.db_table)
