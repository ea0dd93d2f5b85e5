"""Stage a race on the database's own lock view, never by sleeping."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from dbtools.locks import sqlite_lock_path
from tests.helpers.processes import wait_until

# The lock view: is this session waiting for a lock now?
_WAITING = {
    "postgresql": "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
    "mysql": "SELECT trx_state = 'LOCK WAIT' FROM information_schema.INNODB_TRX "
    "WHERE trx_mysql_thread_id = %s",
}

# The lock view: does any session of this database wait for a lock now?
_ANY_WAITING = {
    "postgresql": "SELECT count(*) > 0 FROM pg_stat_activity "
    "WHERE wait_event_type = 'Lock' AND datname = current_database()",
    "mysql": "SELECT count(*) > 0 FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'",
}

# InnoDB refreshes INNODB_TRX only once it has gone unread for 0.1 s: read more
# often, and every read gets the same stale copy.
_MYSQL_READ_EVERY = 0.15


def lock_view_interval(observer: BaseDatabaseWrapper) -> float:
    """How often to read the lock view, for a ``wait_until`` on it."""
    return _MYSQL_READ_EVERY if observer.vendor == "mysql" else 0.02


def some_session_waits(observer: BaseDatabaseWrapper) -> bool:
    """Whether any session waits for a lock, e.g. a child process's whose id we do not
    know. SQLite has no lock view (and one writer: its batch waits anyway): True."""
    if observer.vendor not in _ANY_WAITING:
        return True
    with observer.cursor() as cursor:
        cursor.execute(_ANY_WAITING[observer.vendor])
        return bool(cursor.fetchone()[0])


@contextmanager
def other_connection(*, autocommit: bool = True) -> Iterator[BaseDatabaseWrapper]:
    """A second session on the default database, the other side of a race; closed at the end."""
    other = connections.create_connection("default")
    try:
        other.set_autocommit(autocommit)
        other.ensure_connection()
        yield other
    finally:
        other.close()


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

    def waiting() -> bool:
        with observer.cursor() as cursor:
            cursor.execute(_WAITING[observer.vendor], [session])
            row = cursor.fetchone()
        if row and row[0]:
            return True
        assert not work.done(), f"finished without waiting for a lock: {work.result()!r}"
        return False

    wait_until(waiting, timeout=timeout, interval=lock_view_interval(observer))


def waits_for_run_lock(
    observer: BaseDatabaseWrapper, names: Iterable[str], *, pid: int | None = None
) -> bool:
    """Does process ``pid`` (None: any other process) wait for one of the run locks
    ``names`` (dbtools.locks) now? In the server's lock view (an advisory lock, a
    GET_LOCK), or, on SQLite, with the lock's file open (Linux: /proc/PID/fd)."""
    if observer.vendor == "postgresql":
        with observer.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) > 0 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND NOT l.granted "
                "AND a.datname = current_database()"
            )
            return bool(cursor.fetchone()[0])
    if observer.vendor == "mysql":
        with observer.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) > 0 FROM information_schema.PROCESSLIST "
                "WHERE STATE = 'User lock' AND DB = DATABASE()"
            )
            return bool(cursor.fetchone()[0])
    paths = {str(sqlite_lock_path(observer, name)) for name in names}
    return any(path in paths for path in _files_open(pid))


def _files_open(pid: int | None) -> Iterator[str]:
    """The files process ``pid`` (None: every other process of this user) has open."""
    if pid is None:
        processes = [p for p in Path("/proc").iterdir() if p.name.isdigit()]
        processes = [p for p in processes if int(p.name) != os.getpid()]
    else:
        processes = [Path(f"/proc/{pid}")]
    for process in processes:
        try:
            descriptors = list((process / "fd").iterdir())
        except OSError:  # gone meanwhile, or not ours
            continue
        for descriptor in descriptors:
            try:
                yield os.readlink(descriptor)
            except OSError:
                continue
