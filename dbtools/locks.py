"""A named lock held in the database itself, released when the holder dies.

PostgreSQL: a transaction-scoped advisory lock (advisory locks belong to one
database), taken in a transaction that a connection of the lock's own keeps
open for as long as the lock is held. Not a session-level lock: behind a
transaction pooler such as PgBouncer a session lock lands on whichever server
connection served that one statement and stays there, held for ever by a
connection other clients share (or released from a different one, which does
nothing). An open transaction instead pins one server connection to this
client until it ends; the lock ends with it, and with the client: PgBouncer
closes a server connection whose client went away mid-transaction.
MySQL/MariaDB: ``GET_LOCK`` on a name qualified with the database. SQLite: an
exclusive ``flock`` on ``<database file>.<name>.lock`` (:func:`lock_file_name`),
a file that exists while the lock is held. In each case the server (or the
kernel) drops the lock with the connection or process, so a run killed with
SIGKILL leaves nothing held behind.

With ``wait``, a waiter queues in the server (PostgreSQL ``pg_advisory_xact_lock``
under a ``lock_timeout``, MySQL ``GET_LOCK`` with a timeout): it shows in the
server's lock view (``pg_locks``, the process list's "User lock"), and gets the
lock the moment it is free. It waits in slices of at most :data:`WAIT_SLICE_SECONDS`,
so Ctrl-C is heard within one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

POLL_SECONDS = 0.2
WAIT_SLICE_SECONDS = 1.0


class LockHeld(Exception):
    """Another process holds the lock (and ``wait`` ran out)."""


@contextmanager
def database_lock(name: str, *, using: str, wait: float = 0) -> Iterator[None]:
    connection = connections[using]
    # Connect errors surface here, on the alias, where commands.dbready can name its setting.
    connection.ensure_connection()
    if connection.vendor == "sqlite":
        with _file_lock(sqlite_lock_path(connection, name), wait=wait):
            yield
        return
    if connection.vendor == "postgresql":
        with _pg_transaction_lock(using, _pg_key(name), name=name, wait=wait):
            yield
        return
    key = _mysql_key(connection, name)

    def attempt(seconds: float) -> bool:
        return _fetch_flag(connection, "SELECT GET_LOCK(%s, %s)", [key, seconds])

    _acquire(attempt, name, wait=wait)
    try:
        yield
    finally:
        # A connection that died has dropped the lock with it: nothing to release.
        with contextlib.suppress(DatabaseError):
            if connection.connection is not None and connection.is_usable():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT RELEASE_LOCK(%s)", [key])


@contextmanager
def _pg_transaction_lock(using: str, key: int, *, name: str, wait: float) -> Iterator[None]:
    # A wrapper of its own, not connections[using]: the command's connection
    # commits and rolls back batches, and the lock must outlive every one of them.
    holder = connections.create_connection(using)
    try:
        holder.ensure_connection()
        holder.set_autocommit(False)

        # The lock's transaction sits idle while the run works: not a reason for
        # the server to end it (transaction_timeout exists from PostgreSQL 17).
        keep_open = "set_config('idle_in_transaction_session_timeout', '0', true)"
        if getattr(holder, "pg_version", 0) >= 170000:
            keep_open += ", set_config('transaction_timeout', '0', true)"

        def attempt(seconds: float) -> bool:
            with holder.cursor() as cursor:
                if seconds <= 0:
                    cursor.execute(f"SELECT pg_try_advisory_xact_lock(%s), {keep_open}", [key])
                    row = cursor.fetchone()
                    taken = bool(row and row[0])
                else:
                    taken = _pg_wait_for(cursor, key, seconds=seconds, keep_open=keep_open)
            if not taken:
                holder.rollback()  # the next attempt starts a fresh transaction
            return taken

        _acquire(attempt, name, wait=wait)
        yield
    finally:
        with contextlib.suppress(DatabaseError):
            holder.rollback()  # ends the transaction, and with it the lock
        with contextlib.suppress(DatabaseError):
            holder.close()


def _pg_wait_for(cursor: Any, key: int, *, seconds: float, keep_open: str) -> bool:
    """Queue for the lock for up to ``seconds`` (a lock_timeout of this transaction
    alone; no statement_timeout of the server's cuts the wait short)."""
    milliseconds = max(int(seconds * 1000), 1)
    cursor.execute(
        f"SELECT set_config('lock_timeout', %s, true), "
        f"set_config('statement_timeout', '0', true), {keep_open}",
        [f"{milliseconds}ms"],
    )
    try:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
    except DatabaseError as exc:
        if _sqlstate(exc.__cause__) == "55P03":  # lock_not_available
            return False
        raise
    return True


def _sqlstate(error: object) -> str | None:
    """A driver error's SQLSTATE: psycopg 3 names it ``sqlstate``, psycopg2 ``pgcode``
    (cliproject/databases.py accepts either driver)."""
    return getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)


def _acquire(attempt: Callable[[float], bool], name: str, *, wait: float) -> None:
    """``attempt(seconds)`` (wait up to that long; 0: only try) until it takes the lock;
    LockHeld once ``wait`` has passed."""
    deadline = time.monotonic() + wait
    while not attempt(min(max(deadline - time.monotonic(), 0.0), WAIT_SLICE_SECONDS)):
        if time.monotonic() >= deadline:
            raise LockHeld(name)


def _fetch_flag(connection: BaseDatabaseWrapper, sql: str, params: list[Any]) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return bool(row and row[0])


def _pg_key(name: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )


def _mysql_key(connection: BaseDatabaseWrapper, name: str) -> str:
    """GET_LOCK names are global to the server: qualify them with the database."""
    key = f"{connection.settings_dict['NAME']}.{name}"
    return key if len(key) <= 64 else hashlib.blake2b(key.encode(), digest_size=32).hexdigest()


def lock_file_name(name: str) -> str:
    """The part of SQLite's lock file that names the lock: ``backfill_profiles`` as it is,
    ``backfill_profiles:2/4`` as ``backfill_profiles-2-4``, ``seed_users:run3`` as
    ``seed_users-run3`` (what a file name cannot hold, and ':', become '-')."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)


def sqlite_lock_path(connection: BaseDatabaseWrapper, name: str) -> Path:
    """The file whose flock is the lock ``name`` on a SQLite database."""
    database = str(connection.settings_dict["NAME"])
    slug = lock_file_name(name)
    if database == ":memory:" or database.startswith("file:"):
        return Path(tempfile.gettempdir()) / f"django-{slug}.lock"
    return Path(f"{database}.{slug}.lock")


@contextmanager
def _file_lock(path: Path, *, wait: float) -> Iterator[None]:
    """An exclusive flock on ``path``, and the file removed again as the lock is let go.

    Removing it is safe because every holder checks, once its flock is granted,
    that ``path`` still names the file it locked, and starts again on the new
    file if not. The holder removes the file while it still holds the flock,
    so a process that opened it before (and is granted the flock on it once
    the holder closes it) finds the name gone or naming another file, and
    retries; it can never hold a lock on a file nobody else can see. So a
    second holder is impossible, and each lock's file (one per seed run, too)
    exists only while it is held, or after its holder was killed (SIGKILL: the
    next holder of that name removes it).
    """
    fd = _locked_file(path, wait=wait)
    try:
        yield
    finally:
        try:
            if _names(path, fd):
                path.unlink()
        finally:
            os.close(fd)  # closing the descriptor releases the flock


def _locked_file(path: Path, *, wait: float) -> int:
    deadline = time.monotonic() + wait
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            taken = _flock_before(fd, deadline)
        except BaseException:
            os.close(fd)
            raise
        if not taken:
            os.close(fd)
            raise LockHeld(str(path))
        if _names(path, fd):
            return fd
        os.close(fd)  # its holder removed it as it let go: lock the file the name has now


def _flock_before(fd: int, deadline: float) -> bool:
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(POLL_SECONDS, left))


def _names(path: Path, fd: int) -> bool:
    """Does ``path`` name the file open as ``fd``?"""
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)
