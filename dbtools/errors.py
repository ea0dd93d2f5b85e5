"""What an error means: retry the batch, run again later (exit 75), fix a setting
(exit 78) or fix the command line (exit 2); and an error as one line, for messages.

The batch runner retries what :func:`is_lock_timeout` accepts; a command maps
the connect classifiers to its exit code (``commands/dbready.py``). A service
that refuses its arguments before writing anything raises :class:`UsageError`
(or :class:`ConfigurationError`), which the command bridge turns into exit 2
(or 78) with the message as its one line.
"""

from __future__ import annotations

from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper


class UsageError(Exception):
    """A service refused an argument, before anything was written; the message says
    what to give instead (exit 2)."""


class ConfigurationError(UsageError):
    """A setting a service cannot use; the message names the setting (exit 78)."""


# PostgreSQL SQLSTATEs: lock_not_available, query_canceled (statement_timeout),
# deadlock_detected, serialization_failure.
_PG_RETRYABLE = {"55P03", "57014", "40P01", "40001"}
# MySQL/MariaDB error numbers: lock wait timeout, deadlock, max_statement_time exceeded.
_MYSQL_RETRYABLE = {1205, 1213, 1969, 3024}


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
