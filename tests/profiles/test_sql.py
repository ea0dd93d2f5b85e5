"""profiles.sql: what the set-based statement reads, by the database's own accounting, and
what the receivers' one-row statement lets through."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
from django.contrib.auth import get_user_model
from django.db import DataError, IntegrityError, connections, transaction
from django.utils import timezone

from profiles.models import Profile, WelcomeMail
from profiles.services import profile_defaults, profiles_create_missing
from profiles.sql import insert_missing_for_user, insert_missing_sql
from tests.helpers.users import bulk_users
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


# -- the receivers' one-row statement --

one_row = pytest.mark.any_user_model


def missing_user_pk():
    """A pk of the user model's type that no user has (users are made and deleted)."""
    [user] = bulk_users(1, "gone")
    pk = user.pk
    User._default_manager.filter(pk=pk).delete()
    return pk


@one_row
def test_the_one_row_insert_writes_every_column_as_the_orm_would_and_then_nothing():
    [user] = bulk_users(1)
    now = timezone.now()
    connection = connections["default"]
    values = {"status": WelcomeMail.Status.PENDING, "due_at": now, "created_at": now}

    assert insert_missing_for_user(connection, model=WelcomeMail, user_pk=user.pk, values=values)
    again = {**values, "status": WelcomeMail.Status.SUPPRESSED, "reason": "later"}
    assert not insert_missing_for_user(connection, model=WelcomeMail, user_pk=user.pk, values=again)
    record = WelcomeMail.objects.get()
    assert (record.user_id, record.status, record.reason) == (user.pk, "pending", "")
    # The fields not given: their defaults, as Model.save() writes them.
    assert (record.attempts, record.sent_at, record.message_id) == (0, None, "")
    assert record.due_at == record.created_at == now


@one_row
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("model", [Profile, WelcomeMail])
@pytest.mark.parametrize("in_transaction", [False, True], ids=["autocommit", "atomic"])
def test_the_one_row_insert_for_a_user_not_in_the_database_is_an_integrity_error(
    model, in_transaction
):
    """Regression: the range statement inserted nothing and said so, a silent no-op.

    The foreign key decides: at the statement (autocommit, MySQL) or at commit
    (PostgreSQL's and SQLite's checks are deferred), as for an ORM insert."""
    pk = missing_user_pk()
    now = timezone.now()
    values = {"due_at": now, "created_at": now} if model is WelcomeMail else {"created_at": now}

    # In a transaction, the atomic block's commit is what fails.
    with pytest.raises(IntegrityError), transaction.atomic() if in_transaction else nullcontext():
        insert_missing_for_user(connections["default"], model=model, user_pk=pk, values=values)
    assert not model._default_manager.exists()


@pytest.mark.applies_if(
    connections["default"].vendor == "mysql",
    reason="INSERT IGNORE, and its warnings, are MySQL's",
)
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("in_transaction", [False, True], ids=["autocommit", "atomic"])
def test_on_mysql_a_value_insert_ignore_would_truncate_is_a_data_error(in_transaction):
    """IGNORE turns "data too long" into a warning and inserts the row cut short."""
    [user] = bulk_users(1)
    now = timezone.now()
    values = {"status": "x" * 11, "due_at": now, "created_at": now}  # max_length=10

    with pytest.raises(DataError), transaction.atomic() if in_transaction else nullcontext():
        insert_missing_for_user(
            connections["default"], model=WelcomeMail, user_pk=user.pk, values=values
        )
    assert not WelcomeMail.objects.exists()  # the truncated row went with the error


@pytest.mark.applies_if(
    connections["default"].vendor == "mysql",
    reason="INSERT IGNORE, and its warnings, are MySQL's",
)
def test_on_mysql_a_duplicate_key_costs_no_error_and_leaves_the_transaction_usable():
    [user] = bulk_users(1)
    connection = connections["default"]
    values = {"created_at": timezone.now()}
    assert insert_missing_for_user(connection, user_pk=user.pk, values=values)
    assert not insert_missing_for_user(connection, user_pk=user.pk, values=values)
    assert Profile.objects.filter(user=user).count() == 1
