"""cliproject/databases.py in-process: DATABASE_URL and LOCK_DATABASE_URL -> DATABASES."""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from cliproject.databases import database_from_url, databases_from_environment

BASE_DIR = Path("/srv/project")
TIMEOUTS = {"connect_timeout": 4, "lock_timeout": 9}


def entry(url: str) -> dict[str, Any]:
    return database_from_url(
        url, connect_timeout=4, lock_timeout=9, sqlite_test_name=BASE_DIR / ".test-db.sqlite3"
    )


def from_environment(**environ: str):
    return databases_from_environment(environ, base_dir=BASE_DIR, **TIMEOUTS)


def test_postgresql_gets_the_connect_timeout_and_no_startup_parameter_or_session_set():
    config = entry("postgres://app:pw@db.internal:6432/app")
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("db.internal", 6432, "app")
    # PgBouncer refuses an "options" startup parameter; the timeouts are SET LOCAL per batch.
    assert config["OPTIONS"] == {"connect_timeout": 4}


def test_mysql_gets_the_timeouts_per_session_and_utf8mb4():
    config = entry("mysql://app@db.internal:3306/app")
    assert config["ENGINE"] == "django.db.backends.mysql"
    assert config["OPTIONS"] == {
        "connect_timeout": 4,
        "init_command": "SET SESSION innodb_lock_wait_timeout=9, lock_wait_timeout=9",
        "charset": "utf8mb4",
    }
    assert config["TEST"] == {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}


def test_sqlite_waits_for_the_writer_in_wal_mode_and_tests_on_a_file():
    config = entry("sqlite:////var/lib/app/db.sqlite3")
    assert (config["ENGINE"], config["NAME"]) == (
        "django.db.backends.sqlite3",
        "/var/lib/app/db.sqlite3",
    )
    assert config["OPTIONS"] == {
        "timeout": 9,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    assert config["TEST"] == {"NAME": str(BASE_DIR / ".test-db.sqlite3")}


def test_options_in_the_url_win():
    config = entry("postgres://app@db.internal:5432/app?connect_timeout=30")
    assert config["OPTIONS"]["connect_timeout"] == 30


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://app:Sup3rSecret@db.internal:x/app", "DATABASE_URL is malformed"),
        ("redis://:Sup3rSecret@127.0.0.1/0", "DATABASE_URL"),
        ("oracle://app:Sup3rSecret@db.internal:1521/app", "DATABASE_URL names an unsupported"),
        ("postgres://app:Sup3rSecret@127.0.0.1:5432", "DATABASE_URL has no database name"),
    ],
)
def test_a_bad_url_is_one_line_naming_the_variable_not_the_password(url, message):
    with pytest.raises(ImproperlyConfigured) as refused:
        entry(url)
    line = str(refused.value)
    assert line.startswith(message) and "\n" not in line
    assert "Sup3rSecret" not in line


def test_without_database_url_a_sqlite_file_in_the_project():
    settings = from_environment()
    assert list(settings.databases) == ["default"]
    assert settings.databases["default"]["NAME"] == str(BASE_DIR / "db.sqlite3")
    assert settings.backfill_lock_database is None
    assert from_environment(DATABASE_URL="").databases == settings.databases


def test_test_db_suffix_keeps_concurrent_sqlite_test_runs_apart():
    settings = from_environment(TEST_DB_SUFFIX="-hd")
    assert settings.databases["default"]["TEST"]["NAME"] == str(BASE_DIR / ".test-db-hd.sqlite3")


def test_lock_database_url_is_the_locks_alias_a_mirror_of_default_in_tests():
    settings = from_environment(
        DATABASE_URL="postgres://app@pgbouncer:6432/app",
        LOCK_DATABASE_URL="postgres://app@db.internal:5432/app",
    )
    assert settings.backfill_lock_database == "locks"
    assert settings.databases["default"]["PORT"] == 6432
    locks = settings.databases["locks"]
    assert (locks["HOST"], locks["PORT"], locks["OPTIONS"]) == (
        "db.internal",
        5432,
        {"connect_timeout": 4},
    )
    assert locks["TEST"] == {"MIRROR": "default"}
    assert from_environment(LOCK_DATABASE_URL="").backfill_lock_database is None


def test_a_bad_lock_database_url_stops_start_up_too():
    with pytest.raises(ImproperlyConfigured, match="has no database name"):
        from_environment(LOCK_DATABASE_URL="postgres://app@db.internal:5432")


@pytest.mark.parametrize(
    ("url", "path", "meant"),
    [
        # The typo: three slashes, so dj-database-url reads a relative path.
        ("sqlite:///tmp/x.sqlite3", "tmp/x.sqlite3", "sqlite:////tmp/x.sqlite3"),
        ("sqlite:///db.sqlite3", "db.sqlite3", "sqlite:////db.sqlite3"),
        ("sqlite://localhost/var/db.sqlite3", "var/db.sqlite3", "sqlite:////var/db.sqlite3"),
        ("sqlite:///./db.sqlite3", "./db.sqlite3", None),
    ],
)
def test_a_relative_sqlite_path_is_refused_showing_the_four_slash_form(url, path, meant):
    with pytest.raises(ImproperlyConfigured) as refused:
        from_environment(DATABASE_URL=url)
    line = str(refused.value)
    assert "\n" not in line
    assert line.startswith(f"DATABASE_URL names a relative SQLite path, {path!r}, ")
    in_project = f"sqlite:///{(BASE_DIR / path).resolve()}"
    assert line.endswith(f"e.g. {meant} or {in_project}." if meant else f"e.g. {in_project}.")


def test_a_relative_sqlite_path_is_refused_in_lock_database_url_and_without_a_base_dir():
    with pytest.raises(ImproperlyConfigured, match=r"^LOCK_DATABASE_URL names a relative"):
        from_environment(LOCK_DATABASE_URL="sqlite:///tmp/locks.sqlite3")
    with pytest.raises(ImproperlyConfigured) as refused:
        entry("sqlite:///tmp/x.sqlite3")
    assert str(refused.value).endswith("e.g. sqlite:////tmp/x.sqlite3.")


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////tmp/x.sqlite3",
        f"sqlite:///{Path.cwd() / 'ci-emailuser.sqlite3'}",  # .ci/run's sqlite:///$PWD/...
        "sqlite://:memory:",
        "sqlite://",
    ],
)
def test_absolute_sqlite_paths_and_memory_are_taken(url):
    assert from_environment(DATABASE_URL=url).databases["default"]["NAME"] in (
        url.removeprefix("sqlite:///"),
        ":memory:",
    )


def no_module(monkeypatch, *names: str) -> None:
    """Make ``import name`` fail, as it does where the package is not installed."""
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize(
    ("variable", "url", "modules", "message"),
    [
        (
            "DATABASE_URL",
            "mysql://app:Sup3rSecret@db.internal:3306/app",
            ["MySQLdb"],
            "DATABASE_URL names a MySQL or MariaDB database, but its driver (mysqlclient) is "
            "not installed; install it with: pip install -e '.[mysql]'",
        ),
        (
            "DATABASE_URL",
            "postgres://app:Sup3rSecret@db.internal:5432/app",
            ["psycopg", "psycopg2"],
            "DATABASE_URL names a PostgreSQL database, but its driver (psycopg) is "
            "not installed; install it with: pip install -e '.[postgres]'",
        ),
        (
            "LOCK_DATABASE_URL",
            "postgres://app:Sup3rSecret@db.internal:5432/app",
            ["psycopg", "psycopg2"],
            "LOCK_DATABASE_URL names a PostgreSQL database, but its driver (psycopg) is "
            "not installed; install it with: pip install -e '.[postgres]'",
        ),
    ],
)
def test_a_server_without_its_driver_is_one_line_naming_the_extra(
    monkeypatch, variable, url, modules, message
):
    no_module(monkeypatch, *modules)
    environ = {variable: url}
    if variable != "DATABASE_URL":
        environ["DATABASE_URL"] = "sqlite:////tmp/x.sqlite3"
    with pytest.raises(ImproperlyConfigured) as refused:
        from_environment(**environ)
    assert str(refused.value) == message


def test_either_postgresql_driver_will_do_and_sqlite_needs_none(monkeypatch):
    no_module(monkeypatch, "psycopg", "MySQLdb")
    monkeypatch.setitem(sys.modules, "psycopg2", fake_module("psycopg2"))
    assert from_environment(DATABASE_URL="postgres://app@db.internal:5432/app").databases
    assert from_environment(DATABASE_URL="sqlite:////tmp/x.sqlite3").databases
    monkeypatch.setitem(sys.modules, "MySQLdb", fake_module("MySQLdb"))
    assert from_environment(DATABASE_URL="mysql://app@db.internal:3306/app").databases


def fake_module(name: str) -> ModuleType:
    module = ModuleType(name)
    module.__spec__ = ModuleSpec(name, None)
    return module
