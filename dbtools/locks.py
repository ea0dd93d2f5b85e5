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
exclusive ``flock`` on a file beside the database file. In each case the
server (or the kernel) drops the lock with the connection or process, so a run
killed with SIGKILL leaves nothing stale behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

POLL_SECONDS = 0.2


class LockHeld(Exception):
    """Another process holds the lock (and ``wait`` ran out)."""


@contextmanager
def database_lock(name: str, *, using: str, wait: float = 0) -> Iterator[None]:
    connection = connections[using]
    # Connect errors surface here, on the alias, where commands.dbready can name its setting.
    connection.ensure_connection()
    if connection.vendor == "sqlite":
        with _file_lock(_sqlite_lock_path(connection, name), wait=wait):
            yield
        return
    if connection.vendor == "postgresql":
        with _pg_transaction_lock(using, _pg_key(name), name=name, wait=wait):
            yield
        return
    key = _mysql_key(connection, name)
    _acquire(lambda: _fetch_flag(connection, "SELECT GET_LOCK(%s, 0)", key), name, wait=wait)
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

        def attempt() -> bool:
            with holder.cursor() as cursor:
                cursor.execute(f"SELECT pg_try_advisory_xact_lock(%s), {keep_open}", [key])
                row = cursor.fetchone()
            if row and row[0]:
                return True
            holder.rollback()  # the next attempt starts a fresh transaction
            return False

        _acquire(attempt, name, wait=wait)
        yield
    finally:
        with contextlib.suppress(DatabaseError):
            holder.rollback()  # ends the transaction, and with it the lock
        with contextlib.suppress(DatabaseError):
            holder.close()


def _acquire(attempt: Callable[[], bool], name: str, *, wait: float) -> None:
    deadline = time.monotonic() + wait
    while not attempt():
        if time.monotonic() >= deadline:
            raise LockHeld(name)
        time.sleep(POLL_SECONDS)


def _fetch_flag(connection: BaseDatabaseWrapper, sql: str, key: Any) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(sql, [key])
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


def _sqlite_lock_path(connection: BaseDatabaseWrapper, name: str) -> Path:
    database = str(connection.settings_dict["NAME"])
    slug = "".join(c if c.isalnum() else "-" for c in name)
    if database == ":memory:" or database.startswith("file:"):
        return Path(tempfile.gettempdir()) / f"django-{slug}.lock"
    return Path(f"{database}.{slug}.lock")


@contextmanager
def _file_lock(path: Path, *, wait: float) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockHeld(str(path)) from None
                time.sleep(POLL_SECONDS)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
