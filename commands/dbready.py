"""Fail early, with the next step in the message, when a database cannot be used.

Every database error a command meets ends here as one line and an exit code
(:class:`commands.exitcodes.ExitCode`): 75 only for what a later run gets past
unchanged (the lock is held, the server refused or did not answer, the
connection was lost, a lock or statement timed out), 78 with the setting to fix
for what needs a person (no such database or role, a wrong password, access
denied, an unopenable or missing SQLite file, a timeout the server refuses), 1 otherwise.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError
from django.db import DatabaseError, InterfaceError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor

from commands.exitcodes import ExitCode
from dbtools.batches import BatchTimedOut, TimeoutRejected
from dbtools.errors import (
    first_line,
    is_connect_error,
    is_connect_failure,
    is_connection_lost,
    is_lock_timeout,
    is_pooler_refusal,
    needs_configuration,
)

# The environment variable each database alias comes from (cliproject/databases.py).
_URL_SETTINGS = {"default": "DATABASE_URL", "locks": "LOCK_DATABASE_URL"}


def database_ready(*, using: str) -> None:
    """Raise CommandError (75, 78 or 1: see :func:`connect_error`; 78 a SQLite file that
    does not exist; 1 not migrated) unless ``using`` can be worked on."""
    refuse_missing_sqlite_file(using)
    connection = connections[using]
    try:
        connection.ensure_connection()
    except DatabaseError as exc:
        raise connect_error(using, exc) from exc
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        raise CommandError(
            f"database {using!r} is not migrated ({len(plan)} migration(s) pending); "
            f"run 'manage.py migrate --database {using}' first.",
            returncode=ExitCode.FAILED,
        )


def refuse_missing_sqlite_file(alias: str) -> None:
    """CommandError (78) if ``alias`` is a SQLite file that does not exist, before anything
    connects: connecting would create it, empty, at what is most likely a mistyped path
    (and 'manage.py migrate', the advice for an empty database, would make it a real one).
    A missing directory is left to the connection, which cannot open the file (78 too)."""
    connection = connections[alias]
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict["NAME"])
    path = Path(name)
    # In memory, a temporary database (""), or a URI with SQLite's own rules.
    if name in ("", ":memory:") or name.startswith("file:"):
        return
    if path.exists() or not path.parent.is_dir():
        return
    setting = _URL_SETTINGS.get(alias, f"DATABASES[{alias!r}]")
    raise CommandError(
        f"database {alias!r} has no file {name} (SQLite would create an empty one); "
        f"fix {setting}, or run 'manage.py migrate --database {alias}' to create it.",
        returncode=ExitCode.CONFIG,
    )


def command_error_for(exc: DatabaseError) -> CommandError:
    """A database error as one line, with the exit code that says what to do about it."""
    detail = first_line(exc)
    # Connecting failed: on an alias not connected yet, or on a connection of its
    # own that a lock opened for an alias (dbtools.locks).
    failed = [c for c in connections.all(initialized_only=True) if is_connect_error(c, exc)]
    unconnected = [c for c in failed if c.connection is None]
    if failed:
        return connect_error(_failing_alias(unconnected) if unconnected else failed[0].alias, exc)
    if isinstance(exc, TimeoutRejected):
        return CommandError(
            f"{detail}; set {exc.setting} to a value the server accepts.",
            returncode=ExitCode.CONFIG,
        )
    if any(is_pooler_refusal(c, exc) for c in connections.all(initialized_only=True)):
        return CommandError(
            f"the connection pooler refuses transactions ({detail}); point DATABASE_URL at a "
            "pool in transaction or session mode (LOCK_DATABASE_URL, if set, too).",
            returncode=ExitCode.CONFIG,
        )
    if isinstance(exc, BatchTimedOut):
        return CommandError(
            f"{detail}; nothing of that batch was written; run the command again later.",
            returncode=ExitCode.TEMPFAIL,
        )
    if any(is_lock_timeout(c, exc) for c in connections.all(initialized_only=True)):
        return CommandError(
            f"timed out waiting for a database lock ({detail}); run the command again later.",
            returncode=ExitCode.TEMPFAIL,
        )
    lost = isinstance(exc, InterfaceError) or any(
        is_connection_lost(connection, exc) for connection in connections.all(initialized_only=True)
    )
    if lost:
        return CommandError(
            f"lost the connection to the database ({detail}); what was committed stays; "
            "run the command again.",
            returncode=ExitCode.TEMPFAIL,
        )
    return CommandError(f"database error: {detail}", returncode=ExitCode.FAILED)


def connect_error(alias: str, exc: Exception) -> CommandError:
    """Connecting to ``alias`` failed: 78 naming the setting, 75 if a rerun may get in, else 1."""
    connection = connections[alias]
    setting = _URL_SETTINGS.get(alias, f"DATABASES[{alias!r}]")
    where = f"cannot connect to database {alias!r} ({first_line(exc)})"
    if needs_configuration(connection, exc):
        return CommandError(f"{where}; fix {setting}.", returncode=ExitCode.CONFIG)
    if is_connect_failure(connection, exc):
        return CommandError(
            f"{where}; check that the server is running and {setting} points at it; "
            "try again later.",
            returncode=ExitCode.TEMPFAIL,
        )
    return CommandError(f"{where}; check {setting}.", returncode=ExitCode.FAILED)


def _failing_alias(candidates: list[BaseDatabaseWrapper]) -> str:
    """Which of several unconnected aliases failed: the error does not say, so try each."""
    for connection in candidates[:-1]:
        try:
            connection.ensure_connection()
        except DatabaseError:
            return connection.alias
    return candidates[-1].alias
