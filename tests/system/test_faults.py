"""Fault injection: break things on purpose, against real processes and the real database.

Each test runs on the backend of the run (SQLite file, PostgreSQL or MariaDB in CI).
The random moments come from ``fault_random`` (tests/conftest.py): pytest's header
prints the seed, and ``FAULT_SEED=<seed>`` replays a red run, or one test of it.

SIGTERM and SIGKILL of the commands in ordinary runs are also tested in
tests/system/test_backfill_profiles.py and test_seed_users.py; the cases here add
what those do not check: random moments, a signal during a retry's backoff, the
stop's promptness and its one line, and that a rerun resumes to the same result.
"""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection, connections, transaction

from profiles import sql
from profiles.models import Profile
from profiles.services import profile_defaults
from seeding.generator import FakeUsers
from tests.helpers.locking import other_connection
from tests.helpers.processes import completed, spawned, wait_until
from tests.helpers.users import bulk_users
from tests.profiles.coverage import assert_every_user_has_exactly_one_profile

User = get_user_model()

pytestmark = pytest.mark.django_db(transaction=True)

# Give up on a lock after 1 s, retry a timed-out batch once.
FAST_TIMEOUTS = {"DATABASE_LOCK_TIMEOUT_SECONDS": "1", "BATCH_RETRIES": "1"}
SERVER_BACKEND = not settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A command to its end; a rerun that seeds 200,000 users takes a while on a busy box."""
    return completed(*args, env=env, timeout=180)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@contextmanager
def table_locked(table: str) -> Iterator[None]:
    """Another session holds a lock that conflicts with writing ``table``.

    On PostgreSQL a SHARE lock: writes wait, reads go on. The lock timeout binds
    the batches' writes there, not the reads around them (docs/operations.md)."""
    with other_connection() as other:
        raw = other.connection
        if other.vendor == "sqlite":
            raw.execute("BEGIN IMMEDIATE")  # SQLite locks the whole database for writers
            try:
                yield
            finally:
                raw.execute("ROLLBACK")
        elif other.vendor == "postgresql":
            raw.execute("BEGIN")
            raw.execute(f'LOCK TABLE "{table}" IN SHARE MODE')
            try:
                yield
            finally:
                raw.execute("ROLLBACK")
        else:
            cursor = raw.cursor()
            cursor.execute(f"LOCK TABLES `{table}` WRITE")
            try:
                yield
            finally:
                cursor.execute("UNLOCK TABLES")


def terminate_other_sessions() -> int:
    """Kill every other session on the test database, as a DBA or a failover would."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return int(cursor.fetchone()[0])
        cursor.execute(
            "SELECT id FROM information_schema.processlist "
            "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
        )
        ids = [row[0] for row in cursor.fetchall()]
        for session in ids:
            cursor.execute(f"KILL CONNECTION {int(session)}")
        return len(ids)


def expected_usernames(seed: int, count: int, run_number: int = 1) -> set[str]:
    users = FakeUsers(seed=seed, run_number=run_number, locales=["en_US"])
    return {u[0] for batch in users.batches(count=count, batch_size=1000) for u in batch}


# -- lock and statement timeouts --


def test_backfill_batch_times_out_behind_a_table_lock_then_a_rerun_completes():
    bulk_users(300)
    with table_locked(Profile._meta.db_table):
        started = time.monotonic()
        result = run("backfill_profiles", env=FAST_TIMEOUTS)
        assert result.returncode == 75, result.stderr
        assert "timed out" in one_line(result.stderr)
        assert time.monotonic() - started < 30
    assert Profile.objects.count() == 0  # nothing half-written
    rerun = run("backfill_profiles", env=FAST_TIMEOUTS)
    assert rerun.returncode == 0, rerun.stderr
    assert_every_user_has_exactly_one_profile()


def test_sigterm_while_a_batch_waits_to_be_retried_stops_at_once():
    bulk_users(300)
    # Retries alone would take 1 s + 0.5 s + 1 s + ... + 8 s + 1 s: over 20 s.
    patient = {**FAST_TIMEOUTS, "BATCH_RETRIES": "5", "LOG_LEVEL": "INFO"}
    with table_locked(Profile._meta.db_table), spawned("backfill_profiles", env=patient) as proc:
        logged = []
        reader = threading.Thread(target=lambda: logged.extend(iter(proc.stderr.readline, "")))
        reader.start()
        # Past the first lock timeout, into the backoff: run_batch logs each retry.
        wait_until(lambda: any("retry 1 of 5" in line for line in logged), proc)
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        proc.wait(timeout=60)
        reader.join(timeout=10)
        assert proc.returncode == 143, logged
        assert time.monotonic() - started < 5
        assert not any("retry 2 of 5" in line for line in logged), logged
    assert Profile.objects.count() == 0  # the abandoned batch wrote nothing
    rerun = run("backfill_profiles", env=FAST_TIMEOUTS)
    assert rerun.returncode == 0, rerun.stderr
    assert_every_user_has_exactly_one_profile()


def test_seed_times_out_behind_a_table_lock_then_a_rerun_completes():
    with table_locked(User._meta.db_table):
        result = run("seed_users", "500", "--seed", "3", env=FAST_TIMEOUTS)
        assert result.returncode == 75, result.stderr
        assert "timed out" in one_line(result.stderr)
    assert User.objects.count() == 0
    rerun = run("seed_users", "500", "--seed", "3", env=FAST_TIMEOUTS)
    assert rerun.returncode == 0, rerun.stderr
    assert set(User.objects.values_list("username", flat=True)) == expected_usernames(3, 500)


def test_ordinary_user_updates_during_a_backfill_batch():
    """PostgreSQL and MariaDB: at once, even with the batch's work all done and its
    commit still to come. SQLite has one writer per database: there the update
    waits until the batch commits."""
    bulk_users(2000)
    target = User.objects.order_by("pk").first()
    inserted, release = threading.Event(), threading.Event()

    def batch_in_flight() -> int:
        try:
            with transaction.atomic():
                # As a backfill batch inserts: MySQL leaves the users unlocked.
                created = sql.insert_missing(
                    connections["default"],
                    values=profile_defaults(),
                    first_pk=1,
                    last_pk=10**12,
                    strategy=sql.Strategy(user_locks=False),
                )
                inserted.set()
                release.wait(timeout=30)
            return created
        finally:
            connections.close_all()  # this thread's

    update = f"UPDATE {User._meta.db_table} SET last_login = %s WHERE id = %s"
    with ThreadPoolExecutor(1) as pool, other_connection() as traffic:
        batch = pool.submit(batch_in_flight)
        assert inserted.wait(timeout=30)
        with traffic.cursor() as cursor:  # the updater gives up after 1 s
            if traffic.vendor == "sqlite":
                cursor.execute("PRAGMA busy_timeout = 1000")
            elif traffic.vendor == "mysql":
                cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
        started = time.monotonic()
        try:
            with traffic.cursor() as cursor:
                cursor.execute(update, [_now_for(traffic), target.pk])
            updated_while_open = True
        except OperationalError:  # gave up after its lock timeout
            updated_while_open = False
        blocked_for = time.monotonic() - started
        release.set()
        assert batch.result(timeout=30) == 2000
        if connection.vendor == "sqlite":
            assert not updated_while_open
            with traffic.cursor() as cursor:  # the batch has committed: at once now
                cursor.execute(update, [_now_for(traffic), target.pk])
        else:
            assert updated_while_open and blocked_for < 1, blocked_for
    assert Profile.objects.count() == 2000
    assert User.objects.get(pk=target.pk).last_login is not None


def _now_for(conn):
    from django.utils import timezone

    return User._meta.get_field("last_login").get_db_prep_save(timezone.now(), conn)


# -- the database goes away mid-run --

if SERVER_BACKEND:  # SQLite has no server to lose; its lock faults are tested above

    @pytest.mark.parametrize(
        ("args", "progress"),
        [
            (["backfill_profiles", "--batch-size", "200"], lambda: Profile.objects.count() >= 400),
            (
                ["seed_users", "100000", "--seed", "11", "--batch-size", "500"],
                lambda: User.objects.count() >= 1000,
            ),
        ],
        ids=["backfill_profiles", "seed_users"],
    )
    def test_connection_killed_mid_run_exits_75_and_a_rerun_completes(args, progress):
        if args[0] == "backfill_profiles":
            bulk_users(60000)
        with spawned(*args) as proc:
            wait_until(progress, proc)
            assert terminate_other_sessions() >= 1
            _, err = proc.communicate(timeout=60)
        assert proc.returncode == 75, err
        assert "lost the connection to the database" in one_line(err)
        rerun = run(*args)
        assert rerun.returncode == 0, rerun.stderr
        if args[0] == "backfill_profiles":
            assert_every_user_has_exactly_one_profile()
        else:
            assert "Resumed seed run 1" in rerun.stdout
            usernames = set(User.objects.values_list("username", flat=True))
            assert usernames == expected_usernames(11, 100000)


# -- SIGKILL at a random moment --


@pytest.mark.parametrize("attempt", range(2))
def test_seed_killed_at_a_random_moment_resumes_to_the_uninterrupted_result(
    attempt, fault_random: random.Random
):
    # A random moment: once a random share of the work is committed.
    target = fault_random.randrange(500, 120000)
    with spawned("seed_users", "200000", "--seed", "21", "--batch-size", "500") as proc:
        wait_until(lambda: User.objects.count() >= target, proc)
        proc.kill()
        proc.wait(timeout=30)
    committed = User.objects.count()
    assert committed % 500 == 0, f"half a batch after SIGKILL past {target} users"
    rerun = run("seed_users", "200000", "--seed", "21", "--batch-size", "500")
    assert rerun.returncode == 0, rerun.stderr
    assert set(User.objects.values_list("username", flat=True)) == expected_usernames(21, 200000)


@pytest.mark.parametrize("attempt", range(2))
def test_backfill_killed_at_a_random_moment_leaves_no_lock_and_a_rerun_completes(
    attempt, fault_random: random.Random
):
    bulk_users(60000)
    target = fault_random.randrange(250, 40000)
    with spawned("backfill_profiles", "--batch-size", "250") as proc:
        wait_until(lambda: Profile.objects.count() >= target, proc)
        proc.kill()
        proc.wait(timeout=30)
    assert Profile.objects.count() % 250 == 0, f"half a batch after SIGKILL past {target}"
    rerun = run("backfill_profiles", "--format", "json")  # takes the lock at once
    assert rerun.returncode == 0, rerun.stderr
    assert_every_user_has_exactly_one_profile()
