from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError, connections, transaction

from dbtools import batches
from profiles.models import Profile
from profiles.selectors import profile_coverage
from profiles.services import profile_ensure, profiles_create_missing, profiles_create_missing_sql
from tests.helpers.stopping import StopAfterSeconds
from tests.profiles.plans import rows_read

User = get_user_model()

pytestmark = pytest.mark.django_db


def test_profile_ensure_is_idempotent():
    [user] = User.objects.bulk_create([User(username="bulk")])
    user = User.objects.get(username="bulk")
    assert profile_ensure(user=user, using="default") is True
    assert profile_ensure(user=user, using="default") is False
    assert Profile.objects.filter(user=user).count() == 1


def test_create_missing_counts_rows_inserted_within_the_range():
    User.objects.bulk_create([User(username=f"u{i}") for i in range(10)])
    pks = sorted(User.objects.values_list("pk", flat=True))
    assert profiles_create_missing(using="default", first_pk=pks[0], last_pk=pks[4]) == 5
    assert profiles_create_missing(using="default", first_pk=pks[0], last_pk=pks[-1]) == 5
    assert profiles_create_missing(using="default", first_pk=pks[0], last_pk=pks[-1]) == 0
    assert Profile.objects.count() == 10
    assert set(Profile.objects.values_list("bio", flat=True)) == {""}
    assert Profile.objects.filter(created_at__isnull=True).count() == 0


def test_profile_coverage():
    User.objects.create_user("with")
    User.objects.bulk_create([User(username="without1"), User(username="without2")])
    coverage = profile_coverage(using="default")
    assert (coverage.users, coverage.with_profile, coverage.without_profile) == (3, 1, 2)


def test_a_batch_reads_only_its_own_range_of_profiles():
    """Regression: PostgreSQL scanned every profile for each batch (quadratic over a backfill).

    Only PostgreSQL's planner made that mistake; elsewhere this holds the same bound."""
    User.objects.bulk_create([User(username=f"u{i}") for i in range(22_000)])
    pks = sorted(User.objects.values_list("pk", flat=True))
    profiles_create_missing(using="default", first_pk=pks[0], last_pk=pks[19_999])
    connection = connections["default"]
    # SQLite checks for an existing profile only under a limit.
    limit = 1_000 if connection.vendor == "sqlite" else None
    sql, params = profiles_create_missing_sql(
        connection, first_pk=pks[20_000], last_pk=pks[-1], limit=limit
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


def test_a_stop_request_abandons_a_batch_waiting_to_be_retried(monkeypatch, settings):
    settings.BATCH_RETRIES, settings.BATCH_RETRY_BACKOFF_SECONDS = 5, 60
    monkeypatch.setattr(batches, "is_lock_timeout", lambda connection, exc: True)
    attempts = []

    def timing_out():
        attempts.append(1)
        raise OperationalError("lock wait timeout")

    started = time.monotonic()
    with pytest.raises(batches.BatchAbandoned):  # a signal 0.3 s into a 60 s backoff
        batches.run_batch(timing_out, using="default", stop=StopAfterSeconds(0.3))
    assert len(attempts) == 1
    assert time.monotonic() - started < 5
