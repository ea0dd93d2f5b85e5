"""cliproject/databases.py in-process: DATABASE_URL and LOCK_DATABASE_URL -> DATABASES."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from cliproject.databases import database_from_url, databases_from_environment

BASE_DIR = Path("/srv/project")
TIMEOUTS = {"connect_timeout": 4, "lock_timeout": 9}


def entry(url: str) -> dict[str, Any]:
    return database_from_url(url, **TIMEOUTS, sqlite_test_name=BASE_DIR / ".test-db.sqlite3")


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
