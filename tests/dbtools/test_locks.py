"""dbtools.locks: a run lock in the database, exclusive across sessions, gone with its holder."""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import DatabaseError, connection, connections, transaction

from dbtools.locks import LockHeld, _pg_wait_for, database_lock, sqlite_lock_path
from seeding.runs import run_lock
from tests.helpers.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def taken_elsewhere(name: str) -> bool:
    """Can another session (a thread has connections of its own) take ``name`` right now?"""

    def attempt() -> bool:
        try:
            with database_lock(name, using="default"):
                return True
        except LockHeld:
            return False
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return not pool.submit(attempt).result(timeout=30)


def test_a_held_lock_excludes_other_sessions_until_released():
    with database_lock("test-lock", using="default"):
        assert taken_elsewhere("test-lock")
        assert not taken_elsewhere("another-lock")
    assert not taken_elsewhere("test-lock")


def test_waiting_gives_up_after_wait_seconds():
    with database_lock("test-lock", using="default"):

        def attempt() -> str:
            try:
                with database_lock("test-lock", using="default", wait=0.5):
                    return "taken"
            except LockHeld:
                return "held"
            finally:
                connections.close_all()

        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(attempt).result(timeout=30) == "held"


if connection.vendor == "postgresql":

    def test_the_lock_outlives_the_commands_own_connection():
        """Held in a transaction on a connection of its own: the command's connection may
        commit, roll back and even reconnect (as a pooler hands it another server
        connection) without touching it."""
        with database_lock("test-lock", using="default"):
            with transaction.atomic():
                connection.cursor().execute("SELECT 1")
                transaction.set_rollback(True)
            connection.close()
            assert taken_elsewhere("test-lock")
        assert not taken_elsewhere("test-lock")

    def test_the_lock_is_transaction_scoped_on_an_idle_transaction():
        with database_lock("test-lock", using="default"), connection.cursor() as cursor:
            cursor.execute(
                "SELECT a.state, a.pid = pg_backend_pid() FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()"
            )
            assert cursor.fetchall() == [("idle in transaction", False)]


def waiting_in_the_server() -> bool:
    """Does a session of this database queue for a lock now (the server's lock view)?"""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND wait_event = 'advisory' AND datname = current_database()"
            )
        else:
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                "WHERE STATE = 'User lock' AND DB = DATABASE()"
            )
        return bool(cursor.fetchone()[0])


if connection.vendor != "sqlite":

    def test_a_waiter_queues_in_the_server_and_gets_the_lock_once_it_is_free():
        """Visible in the lock view while it waits (tests and operators see it), and let
        in by the server the moment the holder lets go, not at its next poll."""
        with ThreadPoolExecutor(1) as pool:
            with database_lock("test-lock", using="default"):

                def wait_for_it() -> str:
                    try:
                        with database_lock("test-lock", using="default", wait=30):
                            return "taken"
                    finally:
                        connections.close_all()

                waiter = pool.submit(wait_for_it)
                wait_until(waiting_in_the_server, timeout=10, interval=0.05)
                assert not waiter.done()
            assert waiter.result(timeout=30) == "taken"


if connection.vendor == "sqlite":

    def seed_run_lock_files() -> list[Path]:
        database = Path(connection.settings_dict["NAME"])
        return sorted(database.parent.glob(f"{database.name}.seed*users-run*.lock"))

    def test_the_lock_file_is_named_as_docs_cron_md_says_and_gone_once_released():
        """Regression: the file was <db>.backfill-profiles.lock, the doc said
        <db>.backfill_profiles.lock, and every file stayed for ever."""
        database = connection.settings_dict["NAME"]
        for name, file in [
            ("backfill_profiles", f"{database}.backfill_profiles.lock"),
            ("backfill_profiles:2/4", f"{database}.backfill_profiles-2-4.lock"),
            ("welcome_mails_sync", f"{database}.welcome_mails_sync.lock"),
            (run_lock(7), f"{database}.seed_users-run7.lock"),
        ]:
            assert sqlite_lock_path(connection, name) == Path(file)
            with database_lock(name, using="default"):
                assert Path(file).exists()
            assert not Path(file).exists()

    def test_each_seed_runs_lock_leaves_no_file_behind():
        """Regression: one <db>.seed-users-runN.lock per run, for ever."""
        before = seed_run_lock_files()  # a checkout may keep files of older versions
        for number in range(1, 6):
            with database_lock(run_lock(number), using="default"):
                pass
        assert seed_run_lock_files() == before

    def test_a_waiter_on_the_file_its_holder_removed_takes_the_new_one():
        """The waiter opened the file before its holder removed it and is then granted
        the flock on the removed file: it must lock the file the name has now, or a
        third process could take the lock beside it."""
        path = sqlite_lock_path(connection, "test-lock")
        holding, done = threading.Event(), threading.Event()

        def wait_then_hold() -> None:
            try:
                with database_lock("test-lock", using="default", wait=30):
                    holding.set()
                    done.wait(timeout=30)
            finally:
                connections.close_all()

        with ThreadPoolExecutor(1) as pool:
            with database_lock("test-lock", using="default"):
                waiter = pool.submit(wait_then_hold)
                # The waiter has the file open too (the holder's descriptor is the other).
                wait_until(lambda: opened(path) == 2, timeout=10)
            try:
                assert holding.wait(timeout=30), waiter.result()
                assert taken_elsewhere("test-lock")
                assert path.exists()
            finally:
                done.set()
            waiter.result(timeout=30)
        assert not path.exists()

    def opened(path: Path) -> int:
        """How many descriptors of this process have ``path`` open."""
        count = 0
        for descriptor in Path("/proc/self/fd").iterdir():
            with contextlib.suppress(OSError):
                count += os.readlink(descriptor) == str(path)
        return count


class _LockNotAvailable(Exception):
    """A driver's error for a lock_timeout, as psycopg 3 or psycopg2 spells its SQLSTATE."""

    def __init__(self, attribute: str) -> None:
        super().__init__("canceling statement due to lock timeout")
        setattr(self, attribute, "55P03")


class _TimingOutCursor:
    """A cursor whose wait for the advisory lock times out, as Django wraps the error."""

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute

    def execute(self, sql: str, params: object = None) -> None:
        if sql.startswith("SELECT pg_advisory_xact_lock"):
            raise DatabaseError("lock timeout") from _LockNotAvailable(self.attribute)


@pytest.mark.django_db(transaction=False)
@pytest.mark.parametrize("attribute", ["sqlstate", "pgcode"])  # psycopg 3, psycopg2
def test_a_wait_slice_that_times_out_waits_on_with_either_postgresql_driver(attribute):
    """Regression: only psycopg 3's ``sqlstate`` was read, so with psycopg2 a wait slice
    that ran out raised instead of trying the next slice."""
    cursor = _TimingOutCursor(attribute)
    assert _pg_wait_for(cursor, 1, seconds=0.5, keep_open="1") is False
