"""``DATABASE_URL`` and ``LOCK_DATABASE_URL`` -> ``DATABASES``, as plain functions.

``cliproject/settings.py`` calls :func:`databases_from_environment` once; tests
call the functions in-process with the values to check, instead of starting
``manage.py`` for each URL. Every error is an ``ImproperlyConfigured`` whose
message names the variable and never the URL (it may hold a password; a SQLite
URL, which holds none, is shown corrected). Refused at start-up, so no command
runs with them: a relative SQLite path (``sqlite:///tmp/x``, three slashes),
which SQLite would open below whatever directory the command happens to run
in, ``$HOME`` from cron; and a server URL whose driver is not installed, with
the extra that installs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

# The alias of LOCK_DATABASE_URL's connection in DATABASES.
LOCKS_ALIAS = "locks"

# The modules Django's backends import (any one of them will do), and the extra of
# pyproject.toml that installs one.
DRIVERS = {
    "postgresql": ("PostgreSQL", ("psycopg", "psycopg2"), "psycopg", "postgres"),
    "mysql": ("MySQL or MariaDB", ("MySQLdb",), "mysqlclient", "mysql"),
}


@dataclass(frozen=True)
class DatabaseSettings:
    databases: dict[str, dict[str, Any]]
    # Where backfill_profiles takes its run lock: None is the database it works on.
    backfill_lock_database: str | None


def databases_from_environment(
    environ: Mapping[str, str],
    *,
    base_dir: Path,
    connect_timeout: int,
    lock_timeout: int,
) -> DatabaseSettings:
    """``DATABASES`` from ``DATABASE_URL`` (default: ``<base_dir>/db.sqlite3``) and, if set,
    ``LOCK_DATABASE_URL`` as the ``locks`` alias, a mirror of ``default`` in tests."""

    def parse(url: str, variable: str) -> dict[str, Any]:
        # A file, not memory, so subprocesses started by tests see the test database;
        # TEST_DB_SUFFIX keeps concurrent test runs in one checkout apart.
        suffix = environ.get("TEST_DB_SUFFIX", "")
        config = database_from_url(
            url,
            connect_timeout=connect_timeout,
            lock_timeout=lock_timeout,
            sqlite_test_name=base_dir / f".test-db{suffix}.sqlite3",
            variable=variable,
            base_dir=base_dir,
        )
        require_driver(config, variable=variable)
        return config

    databases = {
        "default": parse(
            environ.get("DATABASE_URL") or f"sqlite:///{base_dir / 'db.sqlite3'}", "DATABASE_URL"
        )
    }
    # The run locks of backfill_profiles and seed_users (dbtools.locks) are, on
    # PostgreSQL, transaction-scoped advisory locks held on a connection of their
    # own, which hold through a transaction pooler such as PgBouncer.
    # LOCK_DATABASE_URL gives backfill_profiles' lock a direct connection to the same
    # database where that cannot work (docs/operations.md, "The backfill's lock").
    lock_url = environ.get("LOCK_DATABASE_URL")
    if not lock_url:
        return DatabaseSettings(databases=databases, backfill_lock_database=None)
    databases[LOCKS_ALIAS] = {**parse(lock_url, "LOCK_DATABASE_URL"), "TEST": {"MIRROR": "default"}}
    return DatabaseSettings(databases=databases, backfill_lock_database=LOCKS_ALIAS)


def database_from_url(
    url: str,
    *,
    connect_timeout: int,
    lock_timeout: int,
    sqlite_test_name: Path,
    variable: str = "DATABASE_URL",
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """One ``DATABASES`` entry for ``url`` (the value of ``variable``), with this
    project's timeouts and options.

    A SQLite path must be absolute (:func:`absolute_sqlite_path`); ``base_dir``
    is offered in the message as the other place the file may have been meant.
    """
    try:
        config: dict[str, Any] = dict(dj_database_url.parse(url))
    except Exception:
        raise ImproperlyConfigured(
            f"{variable} is malformed; expected e.g. postgres://user@host:5432/name, "
            "mysql://user@host:3306/name or sqlite:////absolute/path/to/db.sqlite3."
        ) from None
    engine = config.get("ENGINE", "")
    if engine.rsplit(".", 1)[-1] not in {"sqlite3", "postgresql", "mysql"}:
        raise ImproperlyConfigured(
            f"{variable} names an unsupported backend; use postgres://, mysql:// or sqlite://."
        )
    if not config.get("NAME"):
        raise ImproperlyConfigured(f"{variable} has no database name.")
    options: dict[str, Any] = config.setdefault("OPTIONS", {})
    if engine.endswith("postgresql"):
        # No startup parameter and no session SET: PgBouncer refuses the one
        # ("unsupported startup parameter: options") and, in transaction mode,
        # leaks the other to whichever client gets the server connection next.
        # The timeouts are SET LOCAL in each batch's transaction (dbtools.batches).
        options.setdefault("connect_timeout", connect_timeout)
    elif engine.endswith("mysql"):
        options.setdefault("connect_timeout", connect_timeout)
        options.setdefault(
            "init_command",
            f"SET SESSION innodb_lock_wait_timeout={lock_timeout}, "
            f"lock_wait_timeout={lock_timeout}",
        )
        options.setdefault("charset", "utf8mb4")
        config["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
    elif engine.endswith("sqlite3"):
        absolute_sqlite_path(config["NAME"], variable=variable, base_dir=base_dir)
        # Several processes (cron runs, tests) share one file: wait for the
        # writer instead of failing at once with "database is locked".
        options.setdefault("timeout", lock_timeout)
        # WAL lets readers go on while one process writes; IMMEDIATE takes the
        # write lock when a transaction starts, so two writers queue instead of
        # failing with "database is locked" when one upgrades a read.
        options.setdefault("init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
        options.setdefault("transaction_mode", "IMMEDIATE")
        config["TEST"] = {"NAME": str(sqlite_test_name)}
    return config


def absolute_sqlite_path(name: str, *, variable: str, base_dir: Path | None) -> None:
    """Refuse a relative SQLite path, showing the URL with four slashes.

    dj-database-url reads ``sqlite:///tmp/x.sqlite3`` as the relative path
    ``tmp/x.sqlite3``, which SQLite would open, or silently create, below the
    working directory: the project from a shell, ``$HOME`` from cron, ``/``
    from systemd. The typo means ``/tmp/x.sqlite3``, so that is the first
    suggestion; the project directory is the second. Refused rather than
    resolved against the project: a database that moves with the working
    directory is never what was meant, and neither guess is sure.
    """
    if name == ":memory:" or Path(name).is_absolute():
        return
    meant = [] if name.startswith((".", "~")) else [f"sqlite:////{name}"]
    if base_dir is not None:
        meant.append(f"sqlite:///{(base_dir / Path(name).expanduser()).resolve()}")
    raise ImproperlyConfigured(
        f"{variable} names a relative SQLite path, {name!r}, which would be opened below "
        "whatever directory the command runs in ($HOME from cron); give an absolute path, "
        f"with four slashes after 'sqlite:', e.g. {' or '.join(meant) or 'sqlite:////path/db'}."
    )


def require_driver(config: Mapping[str, Any], *, variable: str) -> None:
    """Refuse a PostgreSQL or MySQL/MariaDB database whose driver is not installed,
    naming the extra that installs it (Django's own message names no extra)."""
    backend = str(config.get("ENGINE", "")).rsplit(".", 1)[-1]
    if backend not in DRIVERS:
        return
    server, modules, package, extra = DRIVERS[backend]
    if any(find_spec(module) is not None for module in modules):
        return
    raise ImproperlyConfigured(
        f"{variable} names a {server} database, but its driver ({package}) is not "
        f"installed; install it with: pip install -e '.[{extra}]'"
    )
