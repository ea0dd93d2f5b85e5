"""dbtools.locks: a run lock in the database, exclusive across sessions, gone with its holder."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections, transaction

from dbtools.locks import LockHeld, database_lock

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
