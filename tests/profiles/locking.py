"""Stage a race on the database's own lock view, never by sleeping."""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

# The lock view: is this session waiting for a lock now?
_WAITING = {
    "postgresql": "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
    "mysql": "SELECT trx_state = 'LOCK WAIT' FROM information_schema.INNODB_TRX "
    "WHERE trx_mysql_thread_id = %s",
}


def session_id(connection: BaseDatabaseWrapper) -> int | None:
    """The server's id of ``connection``'s session, as its lock view names it (None: SQLite)."""
    if connection.vendor not in _WAITING:
        return None
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_backend_pid()"
            if connection.vendor == "postgresql"
            else "SELECT CONNECTION_ID()"
        )
        return int(cursor.fetchone()[0])


def wait_until_waiting(
    observer: BaseDatabaseWrapper, session: int | None, work: Future[Any], timeout: float = 30
) -> None:
    """Return once ``session`` waits for a lock; fail if ``work`` ends first, or after ``timeout``.

    SQLite has no lock view (and one writer: its batch waits for any open write
    transaction anyway), so there this returns at once.
    """
    if session is None:
        return
    deadline = time.monotonic() + timeout
    while True:
        with observer.cursor() as cursor:
            cursor.execute(_WAITING[observer.vendor], [session])
            row = cursor.fetchone()
        if row and row[0]:
            return
        assert not work.done(), f"finished without waiting for a lock: {work.result()!r}"
        assert time.monotonic() < deadline, f"session {session} never waited for a lock"
        # InnoDB refreshes INNODB_TRX only once it has gone unread for 0.1 s: a
        # faster poll would keep reading the same stale copy.
        time.sleep(0.15)
