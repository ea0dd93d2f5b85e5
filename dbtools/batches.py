"""One write batch: one transaction, bounded in how long it may wait, retried on timeouts.

Each batch runs under a lock timeout (``DATABASE_LOCK_TIMEOUT_SECONDS``) and a
statement timeout (``BATCH_STATEMENT_TIMEOUT_SECONDS``). On PostgreSQL both are
``SET LOCAL`` in the batch's own transaction, never a startup parameter or a
session ``SET``, so they hold through a transaction pooler such as PgBouncer
(which refuses the one and hands the other to whichever client gets the server
connection next). MySQL/MariaDB: ``innodb_lock_wait_timeout`` and
``lock_wait_timeout`` set on every connection, and ``max_statement_time``;
SQLite: its busy timeout. A batch that times out has rolled back whole; it is
retried with exponential backoff a bounded number of times, then
:class:`BatchTimedOut` is raised, so a command can exit 75 with nothing
half-written and the next run completes the work.

What counts as a timeout is :func:`dbtools.errors.is_lock_timeout`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.db import DatabaseError, OperationalError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from dbtools.errors import first_line, is_lock_timeout
from dbtools.stopping import StopRequest

T = TypeVar("T")

logger = logging.getLogger(__name__)


class BatchTimedOut(OperationalError):
    """A batch kept timing out on locks or statement time; nothing of it was written."""


class BatchAbandoned(Exception):
    """A stop was asked for while a batch waited to be retried; nothing of it was written."""


def run_batch(
    work: Callable[[], T],
    *,
    using: str,
    durable: bool = True,
    stop: StopRequest | None = None,
) -> T:
    """Run ``work()`` in one transaction under the batch timeouts, retrying timeouts.

    ``durable=False`` lets PostgreSQL acknowledge the commit before its WAL is
    flushed (``synchronous_commit = off`` for this transaction): a server crash
    may lose the last batches, never corrupt them. Only for data a rerun
    recreates, such as seeded users. ``stop`` is read before each
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
            delay = settings.BATCH_RETRY_BACKOFF_SECONDS * 2**attempt
            logger.info(
                "a batch timed out (%s); retry %d of %d in %g s",
                first_line(exc),
                attempt + 1,
                retries,
                delay,
            )
            if not _sleep_unless(stop or StopRequest(), delay):
                raise BatchAbandoned from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _sleep_unless(stop: StopRequest, seconds: float) -> bool:
    """Sleep up to ``seconds``; False, at once, when a stop is asked for."""
    deadline = time.monotonic() + seconds
    while not stop():
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, 0.1))
    return False


class TimeoutRejected(DatabaseError):
    """The server refused a timeout setting's value; ``setting`` names the setting to fix."""

    def __init__(self, setting: str, detail: str) -> None:
        super().__init__(f"the database refused {setting} ({detail})")
        self.setting = setting


# PostgreSQL parameter -> the setting its value comes from.
_PG_TIMEOUT_SETTINGS = {
    "lock_timeout": "DATABASE_LOCK_TIMEOUT_SECONDS",
    "statement_timeout": "BATCH_STATEMENT_TIMEOUT_SECONDS",
}


def _apply_timeouts(connection: BaseDatabaseWrapper, *, durable: bool) -> None:
    """This batch's lock and statement time limits (MySQL's lock timeouts are per connection)."""
    statement_ms = int(settings.BATCH_STATEMENT_TIMEOUT_SECONDS * 1000)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            lock_ms = int(settings.DATABASE_LOCK_TIMEOUT_SECONDS * 1000)
            try:
                # set_config(..., true) is SET LOCAL: it ends with this transaction.
                cursor.execute(
                    "SELECT set_config('lock_timeout', %s, true), "
                    "set_config('statement_timeout', %s, true), "
                    "set_config('synchronous_commit', %s, true)",
                    [f"{lock_ms}ms", f"{statement_ms}ms", "on" if durable else "off"],
                )
            except DatabaseError as exc:
                rejected = _timeout_rejected(exc)
                if rejected is None:
                    raise
                raise rejected from exc
        elif getattr(connection, "mysql_is_mariadb", False):
            cursor.execute("SET SESSION max_statement_time = %s", [statement_ms / 1000])


def _timeout_rejected(exc: DatabaseError) -> TimeoutRejected | None:
    # 22023 invalid_parameter_value; the message quotes the parameter's name,
    # which (unlike the message around it) the server never translates.
    if getattr(exc.__cause__, "sqlstate", None) != "22023":
        return None
    for parameter, setting in _PG_TIMEOUT_SETTINGS.items():
        if f'"{parameter}"' in str(exc):
            return TimeoutRejected(setting, first_line(exc))
    return None
