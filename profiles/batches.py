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

The classifiers below tell a command which errors a rerun can get past
unchanged (75) and which need a person to change a setting (78).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.db import DatabaseError, OperationalError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

T = TypeVar("T")

logger = logging.getLogger(__name__)

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
    work: Callable[[], T],
    *,
    using: str,
    durable: bool = True,
    should_stop: Callable[[], bool] = lambda: False,
) -> T:
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
            delay = settings.BATCH_RETRY_BACKOFF_SECONDS * 2**attempt
            logger.info(
                "a batch timed out (%s); retry %d of %d in %g s",
                first_line(exc),
                attempt + 1,
                retries,
                delay,
            )
            if not _sleep_unless(should_stop, delay):
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


# -- connecting: what a rerun gets past unchanged, and what needs a person --
#
# libpq reports a failed connection as text only: psycopg's OperationalError then
# has no sqlstate and no diag (checked with psycopg 3.3 against PostgreSQL 15 and
# PgBouncer 1.18), so the PostgreSQL classifiers match libpq's, the server's and
# PgBouncer's English messages. A message in another language (the server's
# lc_messages) matches neither list and exits 1: never a 75 that cron would
# count as success. MySQL/MariaDB errors carry their number; SQLite says
# "unable to open database file" for any path it cannot open or create.

_PG_NEEDS_CONFIGURATION = (
    "does not exist",  # database "x" / role "x" does not exist (3D000, 28000)
    "authentication failed",  # password (28P01), and PgBouncer's for a user it does not know
    "no password supplied",
    "pg_hba.conf",  # no pg_hba.conf entry, pg_hba.conf rejects connection (28000)
    "is not permitted to log in",  # 28000
    "permission denied for database",  # 42501: no CONNECT privilege
    "could not translate host name",  # libpq; unless a temporary failure (EAI_AGAIN)
    "failed to resolve host",  # psycopg resolves the name itself, the same way
    "SSL was required",
    "invalid value for parameter",
    "unrecognized configuration parameter",
    "unsupported startup parameter",  # PgBouncer
    "no such database",  # PgBouncer
    "no such user",  # PgBouncer
)
_PG_TEMPORARY = (
    "Connection refused",
    "timeout expired",
    "Connection timed out",
    "No route to host",
    "Network is unreachable",
    "Connection reset by peer",
    "server closed the connection unexpectedly",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "the database system is not accepting connections",
    "too many clients already",
    "remaining connection slots are reserved",
    "too many connections for",
    "Temporary failure in name resolution",
    "[Errno -3]",  # EAI_AGAIN in psycopg's "failed to resolve host"
    "pgbouncer cannot connect to server",
    "no more connections allowed",
    "server login has been failing",
)
# How psycopg's error for a failure to connect begins: its own words ("connection
# failed", "... timeout expired", "failed to resolve host"), or libpq's.
_PG_CONNECT_PREFIXES = (
    "connection failed",
    "connection to server",
    "connection timeout expired",
    "failed to resolve host",
)
# MySQL/MariaDB: access denied (1044 to the database, 1045 for the user, 1698
# without a password), unknown database (1049), unknown host (2005), an
# authentication method the client cannot speak (1251, 2059).
_MYSQL_NEEDS_CONFIGURATION = {1044, 1045, 1049, 1251, 1698, 2005, 2059}
# Can't connect (socket, TCP: refused or timed out), too many connections.
_MYSQL_TEMPORARY = {1040, 2002, 2003}


def is_connect_error(connection: BaseDatabaseWrapper, exc: Exception) -> bool:
    """Did ``exc`` come from opening the connection, for whatever reason?"""
    if connection.vendor == "postgresql":
        return str(exc).startswith(_PG_CONNECT_PREFIXES)
    if connection.vendor == "mysql":
        return _mysql_code(exc) in _MYSQL_NEEDS_CONFIGURATION | _MYSQL_TEMPORARY or (
            _mysql_handshake_failed(exc)
        )
    return "unable to open database file" in str(exc)


def needs_configuration(connection: BaseDatabaseWrapper, exc: Exception) -> bool:
    """Was a connection refused over what the settings ask for: the database, the
    role, the password, the host name, the file? No rerun gets past that unchanged."""
    text = str(exc)
    if connection.vendor == "postgresql":
        if getattr(getattr(exc.__cause__, "pgconn", None), "needs_password", False):
            return True
        temporary = "Temporary failure" in text or "[Errno -3]" in text
        return not temporary and any(m in text for m in _PG_NEEDS_CONFIGURATION)
    if connection.vendor == "mysql":
        # 2005 "(-3)" is EAI_AGAIN: the resolver failed for now, the name may be fine.
        return _mysql_code(exc) in _MYSQL_NEEDS_CONFIGURATION and "(-3)" not in text
    return "unable to open database file" in text


def is_connect_failure(connection: BaseDatabaseWrapper, exc: Exception) -> bool:
    """Did connecting fail for a reason a later run can get past unchanged: refused, no
    answer, timed out, the server starting, stopping or full?"""
    if connection.vendor == "postgresql":
        return any(m in str(exc) for m in _PG_TEMPORARY)
    if connection.vendor == "mysql":
        code = _mysql_code(exc)
        return (
            code in _MYSQL_TEMPORARY
            or _mysql_handshake_failed(exc)
            or (code == 2005 and "(-3)" in str(exc))
        )
    return False


def _mysql_code(exc: Exception) -> object:
    return exc.args[0] if exc.args else None


def _mysql_handshake_failed(exc: Exception) -> bool:
    """2013 while reading the greeting: the server accepted the TCP connection, said nothing."""
    return _mysql_code(exc) == 2013 and "handshake" in str(exc)


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


def is_pooler_refusal(connection: BaseDatabaseWrapper, exc: Exception) -> bool:
    """Did a connection pooler refuse a transaction? PgBouncer in statement mode does,
    then drops the connection; every batch (and the PostgreSQL run lock) needs one."""
    return connection.vendor == "postgresql" and "not allowed in statement pooling mode" in str(exc)


def first_line(exc: BaseException) -> str:
    """An error as one line, for messages that must stay one line."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
