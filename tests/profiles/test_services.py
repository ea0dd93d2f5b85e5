from __future__ import annotations

import queue
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connections
from django.test.utils import CaptureQueriesContext

from profiles import sql
from profiles.backfill import profiles_backfill
from profiles.models import Profile
from profiles.selectors import profile_coverage
from profiles.services import profile_defaults, profile_ensure, profiles_create_missing
from tests.helpers.locking import other_connection, session_id, wait_until_waiting
from tests.helpers.users import bulk_users

User = get_user_model()

pytestmark = pytest.mark.django_db


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


# -- profile_ensure: the receiver's one row, against a backfill --


def ensure_in_own_connection(sessions: queue.Queue[int | None], user) -> bool:
    """profile_ensure in this thread's own connection (autocommit, as a receiver of a
    save outside a transaction); its session id first goes to ``sessions``."""
    try:
        sessions.put(session_id(connections["default"]))
        return profile_ensure(user=user, using="default")
    finally:
        connections.close_all()  # this thread's


def backfill_in_own_connection(sessions: queue.Queue[int | None]):
    try:
        sessions.put(session_id(connections["default"]))
        return profiles_backfill(using="default", batch_size=100)
    finally:
        connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_profile_ensure_for_a_user_not_in_the_database_is_an_integrity_error():
    """Regression: it ran the backfill's range statement, which found no user and
    inserted nothing: a silent False."""
    [user] = bulk_users(1)
    User._default_manager.filter(pk=user.pk).delete()
    with pytest.raises(IntegrityError):
        profile_ensure(user=user, using="default")
    assert not Profile.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backfill_ends", ["commit", "rollback"])
def test_a_receiver_waits_for_a_backfill_batch_holding_its_users_profile(backfill_ends):
    """In autocommit the user is committed before post_save: a backfill batch may have
    inserted its profile, not yet committed. The unique index makes the receiver's
    row wait for the batch; then whichever row is there decides."""
    made = bulk_users(30)
    user = made[10]
    with other_connection(autocommit=False) as backfill:
        created = sql.insert_missing(
            backfill, values=profile_defaults(), first_pk=made[0].pk, last_pk=made[-1].pk
        )
        assert created == 30
        with ThreadPoolExecutor(1) as pool:
            sessions: queue.Queue[int | None] = queue.Queue()
            running = pool.submit(ensure_in_own_connection, sessions, user)
            wait_until_waiting(connections["default"], sessions.get(timeout=30), running)
            getattr(backfill, backfill_ends)()
            inserted = running.result(timeout=30)
    assert inserted is (backfill_ends == "rollback")
    assert Profile.objects.filter(user=user).count() == 1
    assert Profile.objects.count() == (30 if backfill_ends == "commit" else 1)


@pytest.mark.django_db(transaction=True)
def test_a_backfill_batch_waits_for_a_receivers_profile_and_neither_duplicates_nor_counts_it():
    made = bulk_users(30)
    user = made[10]
    with other_connection(autocommit=False) as receiver:  # in the saving transaction
        assert sql.insert_missing_for_user(receiver, user_pk=user.pk, values=profile_defaults())
        with ThreadPoolExecutor(1) as pool:
            sessions: queue.Queue[int | None] = queue.Queue()
            running = pool.submit(backfill_in_own_connection, sessions)
            wait_until_waiting(connections["default"], sessions.get(timeout=30), running)
            receiver.commit()
            result = running.result(timeout=30)
    assert result.created == 29
    assert Profile.objects.count() == Profile.objects.values("user").distinct().count() == 30


def test_profile_ensure_is_one_statement_of_one_row():
    """The receiver's statement, run for every user saved: no join, no range."""
    [user] = bulk_users(1)
    with CaptureQueriesContext(connections["default"]) as queries:
        assert profile_ensure(user=user, using="default")
    [statement] = [query["sql"] for query in queries.captured_queries]
    assert statement.startswith("INSERT") and "VALUES" in statement
    assert "SELECT" not in statement
