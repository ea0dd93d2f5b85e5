from __future__ import annotations

import queue
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection, connections

from profiles import sql
from profiles.backfill import _Backfill, profiles_backfill
from profiles.models import Profile
from profiles.selectors import users_without_profile_count
from profiles.services import profile_defaults
from profiles.sharding import Shard
from tests.helpers.locking import other_connection, session_id, wait_until_waiting
from tests.helpers.stopping import StopAtCheck
from tests.helpers.users import bulk_users

User = get_user_model()

pytestmark = pytest.mark.django_db


def backfill_in_own_connection(sessions: queue.Queue[int | None] | None = None, **kwargs):
    """A backfill in this thread's own connection; its session id first goes to ``sessions``."""
    try:
        if sessions is not None:
            sessions.put(session_id(connections["default"]))
        return backfill(**kwargs)
    finally:
        connections.close_all()  # this thread's


def backfill(**kwargs):
    kwargs.setdefault("batch_size", 7)
    return profiles_backfill(using="default", **kwargs)


def test_backfill_skips_pk_gaps_with_few_batches():
    bulk_users(10, start_pk=1)
    bulk_users(10, "far", start_pk=1_000_000)
    result = backfill(batch_size=10)
    assert result.created == 20
    assert result.batches == 2  # the million-wide gap costs one index lookup, not 100k batches


def test_max_seconds_stops_after_the_batch_in_flight():
    bulk_users(30)
    result = backfill(max_seconds=1e-9)
    assert (result.created, result.batches, result.stopped) == (7, 1, "max_seconds")
    assert backfill().created == 23


def test_a_stop_request_ends_after_the_batch_in_flight():
    bulk_users(30)
    result = backfill(stop=StopAtCheck(1, signal.SIGTERM))
    assert (result.created, result.stopped, result.stop_signal) == (7, "signal", signal.SIGTERM)
    assert users_without_profile_count(using="default") == 23


def test_shards_cover_every_user_exactly_once():
    bulk_users(100)
    created = [backfill(shard=Shard(k, 3)).created for k in (1, 2, 3)]
    assert sum(created) == 100 and all(created)
    assert Profile.objects.count() == 100
    assert backfill().created == 0


def test_shard_counts():
    bulk_users(10, start_pk=1)
    assert users_without_profile_count(using="default", shard=Shard(1, 2)) == 5
    assert users_without_profile_count(using="default", shard=Shard(2, 2)) == 5


def test_profiles_created_during_the_run_are_not_duplicated_or_counted():
    bulk_users(40)
    made = []

    def on_batch(done, total):
        if not made:  # a receiver-made profile and a fresh user appear mid-run
            made.append(User.objects.create_user("arrived"))
            Profile.objects.create(user=User.objects.order_by("-pk")[1])

    result = backfill(on_batch=on_batch)
    assert Profile.objects.count() == User.objects.count() == 41
    assert Profile.objects.values("user").distinct().count() == 41
    assert result.created == 41 - 2  # the two profiles made elsewhere are not counted


def test_empty_table():
    result = backfill()
    assert (result.created, result.batches, result.max_pk) == (0, 0, None)


# -- several batches at once (--jobs) --


@pytest.mark.django_db(transaction=True)  # worker threads use connections of their own
def test_jobs_create_each_profile_once_and_cover_the_whole_table():
    bulk_users(500, start_pk=1)
    bulk_users(500, "far", start_pk=100_000)
    User.objects.create_user("has_one")
    result = backfill(batch_size=37, jobs=2)
    assert result.jobs == (1 if connection.vendor == "sqlite" else 2)  # SQLite: one writer
    assert result.created == 1000 and result.stopped is None
    assert Profile.objects.count() == Profile.objects.values("user").distinct().count() == 1001
    assert result.last_pk == result.max_pk == User.objects.order_by("pk").last().pk
    assert backfill(jobs=2).created == 0


@pytest.mark.django_db(transaction=True)  # outside a transaction, where jobs could run
def test_limit_runs_one_job_so_it_stays_exact():
    bulk_users(30)
    result = backfill(limit=11, jobs=2)
    assert (result.created, result.jobs) == (11, 1)


@pytest.mark.django_db(transaction=True)
def test_an_error_in_one_job_stops_the_others_and_is_raised(monkeypatch):
    bulk_users(300)
    calls = []

    def failing_batch(self, batch):
        calls.append(batch.last_pk)
        if len(calls) == 3:
            raise OperationalError("server closed the connection unexpectedly")
        return real_batch(self, batch)

    real_batch = _Backfill._create
    monkeypatch.setattr(_Backfill, "_create", failing_batch)
    with pytest.raises(OperationalError, match="server closed"):
        backfill(batch_size=10, jobs=2)
    assert len(calls) < 30  # nobody claimed the rest
    assert Profile.objects.count() == 10 * (len(calls) - 1)  # whole batches only
    monkeypatch.undo()
    backfill()
    assert users_without_profile_count(using="default") == 0


@pytest.mark.django_db(transaction=True)
def test_a_profile_committed_while_a_batch_waits_for_it_is_neither_duplicated_nor_counted():
    """The batch runs first without its conflict clause (PostgreSQL); the unique
    index makes it wait for the other writer, then fail, then rerun with it."""
    bulk_users(50)
    contested = User.objects.order_by("pk")[20]
    attempts = []  # whether each attempt left the conflict clause out ("optimistic")
    real_insert_missing = sql.insert_missing

    def insert_missing(connection, **kwargs):
        attempts.append(not kwargs["strategy"].conflict_clause)
        return real_insert_missing(connection, **kwargs)

    with other_connection(autocommit=False) as other:
        with other.cursor() as cursor:  # a receiver's profile, not yet committed
            statement = sql.insert_missing_sql(
                other, values=profile_defaults(), first_pk=contested.pk, last_pk=contested.pk
            )
            cursor.execute(*statement)
        with ThreadPoolExecutor(1) as pool, pytest.MonkeyPatch.context() as patch:
            patch.setattr(sql, "insert_missing", insert_missing)
            sessions: queue.Queue = queue.Queue()
            running = pool.submit(backfill_in_own_connection, sessions, batch_size=100)
            # The batch waits on the other writer's row.
            wait_until_waiting(connection, sessions.get(timeout=30), running)
            other.commit()
            result = running.result(timeout=30)
    assert result.created == 49
    assert Profile.objects.count() == Profile.objects.values("user").distinct().count() == 50
    if connection.vendor == "postgresql":
        assert attempts == [True, False]


def test_inside_a_transaction_one_job_sees_its_rows():
    bulk_users(30)  # not committed: the test's transaction
    result = backfill(jobs=2)
    assert (result.created, result.jobs) == (30, 1)


@pytest.mark.django_db(transaction=True)
def test_a_user_deleted_while_its_batch_runs_leaves_no_orphan_profile():
    """The delete is not committed when the batch reads the users, and is by the time
    it commits: PostgreSQL's deferred foreign-key check fails and the batch reruns,
    MariaDB's batch (foreign-key check off) waits it out and removes the orphan."""
    bulk_users(50)
    doomed = User.objects.order_by("pk")[20].pk
    with other_connection(autocommit=False) as other:
        with other.cursor() as cursor:
            cursor.execute(f"DELETE FROM {User._meta.db_table} WHERE id = %s", [doomed])
        with ThreadPoolExecutor(1) as pool:
            sessions: queue.Queue = queue.Queue()
            running = pool.submit(backfill_in_own_connection, sessions, batch_size=100)
            # The batch has read the users and now waits on the deleter.
            wait_until_waiting(connection, sessions.get(timeout=30), running)
            other.commit()
            result = running.result(timeout=30)
    assert result.created == 49
    assert not Profile.objects.filter(user_id=doomed).exists()
    assert Profile.objects.count() == User.objects.count() == 49


@pytest.mark.applies_if(
    connection.vendor != "sqlite",
    reason="SQLite has one writer: a batch waits for any write, and has no lock view",
)
@pytest.mark.django_db(transaction=True)
def test_an_uncommitted_update_of_a_user_in_the_batch():
    """MariaDB: the batch's locking read, which no row matches, waits the update out
    (so it reads every user of the batch: the optimizer must not fold its predicate
    away, and the predicate must not overflow). PostgreSQL: the insert's foreign-key
    check does not conflict with an update of other columns, so it does not wait."""
    bulk_users(50)
    target = User.objects.order_by("pk")[20].pk
    with other_connection(autocommit=False) as other:
        with other.cursor() as cursor:
            cursor.execute(
                f"UPDATE {User._meta.db_table} SET first_name = %s WHERE id = %s", ["x", target]
            )
        with ThreadPoolExecutor(1) as pool:
            sessions: queue.Queue = queue.Queue()
            running = pool.submit(backfill_in_own_connection, sessions, batch_size=100)
            if connection.vendor == "mysql":
                wait_until_waiting(connection, sessions.get(timeout=30), running)
                other.commit()
            result = running.result(timeout=30)  # PostgreSQL: with the update still open
            other.commit()
    assert result.created == 50
    assert User.objects.get(pk=target).first_name == "x"


def test_a_limit_reports_the_last_pk_it_covered_not_its_batchs_end():
    """Regression: a run cut short by --limit inside its batch said the batch's last
    pk, though the users after the limit's last one had no profile."""
    made = bulk_users(30)
    # Users that already have one are covered too: the 7 made are the 7 after them.
    Profile.objects.bulk_create([Profile(user=user, **profile_defaults()) for user in made[:3]])
    result = backfill(batch_size=100, limit=7)
    assert (result.created, result.stopped) == (7, "limit")
    assert (result.last_pk, result.max_pk) == (made[9].pk, made[-1].pk)
    assert not Profile.objects.filter(user__pk__gt=result.last_pk).exists()
    # A limit met exactly at a batch's end covers the whole batch.
    result = backfill(batch_size=5, limit=5)
    assert result.last_pk == made[14].pk


def test_a_limit_in_a_shard_covers_the_shards_users_only():
    made = bulk_users(40)
    shard = Shard(2, 2)  # the users with an odd pk
    odd = [user for user in made if user.pk % 2 == 1]
    result = backfill(batch_size=100, limit=4, shard=shard)
    # Up to the shard's 4th user: the even users between are another shard's to cover.
    assert (result.created, result.last_pk) == (4, odd[3].pk)
