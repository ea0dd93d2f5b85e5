"""One write batch: one transaction, bounded in how long it may wait, retried on timeouts.

Each batch runs under a lock timeout (``DATABASE_LOCK_TIMEOUT_SECONDS``, set
on every connection: PostgreSQL ``lock_timeout``, MySQL/MariaDB
``innodb_lock_wait_timeout`` and ``lock_wait_timeout``, SQLite's busy timeout)
and a statement timeout (``BATCH_STATEMENT_TIMEOUT_SECONDS``: PostgreSQL
``statement_timeout`` for the batch's transaction, MariaDB
``max_statement_time``). A batch that times out has rolled back whole; it is
retried with exponential backoff a bounded number of times, then
:class:`BatchTimedOut` is raised, so a command can exit 75 with nothing
half-written and the next run completes the work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.db import OperationalError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

T = TypeVar("T")

# PostgreSQL SQLSTATEs: lock_not_available, query_canceled (statement_timeout),
# deadlock_detected, serialization_failure.
_PG_RETRYABLE = {"55P03", "57014", "40P01", "40001"}
# MySQL/MariaDB error numbers: lock wait timeout, deadlock, max_statement_time exceeded.
_MYSQL_RETRYABLE = {1205, 1213, 1969, 3024}


class BatchTimedOut(OperationalError):
    """A batch kept timing out on locks or statement time; nothing of it was written."""


class BatchAbandoned(Exception):
    """A stop was asked for while a batch waited to be retried; nothing of it was written."""


def run_batch(
    work: Callable[[], T], *, using: str, durable: bool = True,
    should_stop: Callable[[], bool] = lambda: False,
) -> T:  # fmt: skip
    """Run ``work()`` in one transaction under the batch timeouts, retrying timeouts.

    ``durable=False`` lets PostgreSQL acknowledge the commit before its WAL is
    flushed (``synchronous_commit = off`` for this transaction): a server crash
    may lose the last batches, never corrupt them. Only for data a rerun
    recreates, such as seeded users. ``should_stop()`` is read before each
    retry, so a signal does not wait out every retry and backoff.
    """
    connection = connections[using]
    retries: int = settings.BATCH_RETRIES
    for attempt in range(retries + 1):
        try:
            with transaction.atomic(using=using):
                _apply_timeouts(connection, durable=durable)
                return work()
        except OperationalError as exc:
            if not is_lock_timeout(connection, exc):
                raise
            if attempt == retries:
                raise BatchTimedOut(
                    f"a batch timed out {retries + 1} time(s) waiting for a lock or on the "
                    f"statement time limit ({first_line(exc)})"
                ) from exc
            if not _sleep_unless(should_stop, settings.BATCH_RETRY_BACKOFF_SECONDS * 2**attempt):
                raise BatchAbandoned from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _sleep_unless(should_stop: Callable[[], bool], seconds: float) -> bool:
    """Sleep up to ``seconds``; False, at once, when a stop is asked for."""
    deadline = time.monotonic() + seconds
    while not should_stop():
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, 0.1))
    return False


def _apply_timeouts(connection: BaseDatabaseWrapper, *, durable: bool) -> None:
    """The statement time limit of one batch (lock timeouts are set per connection)."""
    milliseconds = int(settings.BATCH_STATEMENT_TIMEOUT_SECONDS * 1000)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # set_config(..., true) is SET LOCAL: it ends with this transaction.
            cursor.execute(
                "SELECT set_config('statement_timeout', %s, true), "
                "set_config('synchronous_commit', %s, true)",
                [f"{milliseconds}ms", "on" if durable else "off"],
            )
        elif getattr(connection, "mysql_is_mariadb", False):
            cursor.execute("SET SESSION max_statement_time = %s", [milliseconds / 1000])


def is_lock_timeout(connection: BaseDatabaseWrapper, exc: Exception) -> bool:
    """Did ``exc`` come from waiting too long (lock, statement time, deadlock)? Retryable."""
    if connection.vendor == "postgresql":
        return getattr(exc.__cause__, "sqlstate", None) in _PG_RETRYABLE
    if connection.vendor == "mysql":
        return bool(exc.args) and exc.args[0] in _MYSQL_RETRYABLE
    return "database is locked" in str(exc)  # SQLite, after its busy timeout


# PostgreSQL: connection exceptions (class 08) and the server shutting the session down.
_PG_LOST = {"57P01", "57P02", "57P03"}
# MySQL/MariaDB client errors: server gone away, lost connection, can't connect, killed.
_MYSQL_LOST = {2002, 2003, 2006, 2013, 2055, 1927, 4031}


def is_connect_failure(connection: BaseDatabaseWrapper, exc: Exception) -> bool:
    """Did ``exc`` come from failing to connect at all (refused, no answer, timed out)?"""
    if connection.vendor == "postgresql":
        return str(exc).startswith(("connection failed", "connection to server"))
    if connection.vendor == "mysql":
        code = exc.args[0] if exc.args else None
        return code in (2002, 2003, 2005) or (code == 2013 and "handshake" in str(exc))
    return False


def is_connection_lost(connection: BaseDatabaseWrapper, exc: Exception) -> bool:
    """Did ``exc`` come from losing the connection (server restart, killed session)?"""
    if connection.vendor == "postgresql":
        cause = exc.__cause__
        sqlstate = getattr(cause, "sqlstate", None)
        # No SQLSTATE at all: the client noticed the socket close before any reply.
        return isinstance(exc, OperationalError) and (
            sqlstate is None or sqlstate.startswith("08") or sqlstate in _PG_LOST
        )
    if connection.vendor == "mysql":
        return bool(exc.args) and exc.args[0] in _MYSQL_LOST
    return False


def first_line(exc: BaseException) -> str:
    """An error as one line, for messages that must stay one line."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
