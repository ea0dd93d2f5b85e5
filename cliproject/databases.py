"""``DATABASE_URL`` and ``LOCK_DATABASE_URL`` -> ``DATABASES``, as plain functions.

``cliproject/settings.py`` calls :func:`databases_from_environment` once; tests
call both functions in-process with the values to check, instead of starting
``manage.py`` for each URL. Every error is an ``ImproperlyConfigured`` whose
message names the variable and never the URL (it may hold a password).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

# The alias of LOCK_DATABASE_URL's connection in DATABASES.
LOCKS_ALIAS = "locks"


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

    def parse(url: str) -> dict[str, Any]:
        # A file, not memory, so subprocesses started by tests see the test database;
        # TEST_DB_SUFFIX keeps concurrent test runs in one checkout apart.
        suffix = environ.get("TEST_DB_SUFFIX", "")
        return database_from_url(
            url,
            connect_timeout=connect_timeout,
            lock_timeout=lock_timeout,
            sqlite_test_name=base_dir / f".test-db{suffix}.sqlite3",
        )

    databases = {
        "default": parse(environ.get("DATABASE_URL") or f"sqlite:///{base_dir / 'db.sqlite3'}")
    }
    # The run locks of backfill_profiles and seed_users (dbtools.locks) are, on
    # PostgreSQL, transaction-scoped advisory locks held on a connection of their
    # own, which hold through a transaction pooler such as PgBouncer.
    # LOCK_DATABASE_URL gives backfill_profiles' lock a direct connection to the same
    # database where that cannot work (docs/operations.md, "The backfill's lock").
    lock_url = environ.get("LOCK_DATABASE_URL")
    if not lock_url:
        return DatabaseSettings(databases=databases, backfill_lock_database=None)
    databases[LOCKS_ALIAS] = {**parse(lock_url), "TEST": {"MIRROR": "default"}}
    return DatabaseSettings(databases=databases, backfill_lock_database=LOCKS_ALIAS)


def database_from_url(
    url: str, *, connect_timeout: int, lock_timeout: int, sqlite_test_name: Path
) -> dict[str, Any]:
    """One ``DATABASES`` entry for ``url``, with this project's timeouts and options."""
    try:
        config: dict[str, Any] = dict(dj_database_url.parse(url))
    except Exception:
        raise ImproperlyConfigured(
            "DATABASE_URL is malformed; expected e.g. postgres://user@host:5432/name, "
            "mysql://user@host:3306/name or sqlite:///path/to/db.sqlite3."
        ) from None
    engine = config.get("ENGINE", "")
    if engine.rsplit(".", 1)[-1] not in {"sqlite3", "postgresql", "mysql"}:
        raise ImproperlyConfigured(
            "DATABASE_URL names an unsupported backend; use postgres://, mysql:// or sqlite://."
        )
    if not config.get("NAME"):
        raise ImproperlyConfigured("DATABASE_URL has no database name.")
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
