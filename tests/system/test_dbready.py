"""Database errors as exit codes cron can trust: 75 only for what a rerun gets past unchanged,
78 with the setting to fix for what needs a person. Real servers, real manage.py processes.

Each backend's own failures are tested in that backend's run (the cases below are
chosen by the run's vendor). A wrong PostgreSQL password is tested through
PgBouncer (tests/system/test_pgbouncer.py): the test server trusts every local
connection, so it never asks for one.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.db import connection

from commands.exitcodes import ExitCode
from tests.helpers.commands import unreachable_database_url

VENDOR = connection.vendor


def server_url(
    *,
    user: str | None = None,
    password: str | None = None,
    name: str | None = None,
    port: int | None = None,
) -> str:
    """The test server's URL with some parts replaced."""
    s = connection.settings_dict
    scheme = {"postgresql": "postgres", "mysql": "mysql"}[VENDOR]
    auth = user if user is not None else s["USER"]
    if password is not None:
        auth += f":{password}"
    host = s["HOST"] or "127.0.0.1"
    return f"{scheme}://{auth}@{host}:{port or s['PORT'] or ''}/{name or s['NAME']}"


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def mysql_user_with_password(password: str) -> Iterator[str]:
    """A user that may read the test database; dropped afterwards."""
    name = f"cli_pw_{secrets.token_hex(4)}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'")
        cursor.execute(f"GRANT SELECT ON `{connection.settings_dict['NAME']}`.* TO '{name}'@'%'")
    try:
        yield name
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP USER '{name}'@'%'")


def missing() -> str:
    return f"{connection.settings_dict['NAME']}_missing_{secrets.token_hex(3)}"


# (case id, the environment's DATABASE_URL, exit code, a fragment of the line)
Case = tuple[str, Callable[[], str], int, str]
SQLITE_CASES: list[Case] = [
    (
        "no such directory",
        lambda: "sqlite:////nonexistent-directory/db.sqlite3",
        78,
        "unable to open database file",
    ),
    (
        "not a directory",
        lambda: f"sqlite:///{connection.settings_dict['NAME']}/db.sqlite3",
        78,
        "unable to open database file",
    ),
    # SQLite has no server to refuse: a refused PostgreSQL port (unreachable_database_url).
    ("refused", unreachable_database_url, 75, "Connection refused"),
]
CASES: dict[str, list[Case]] = {
    "postgresql": [
        ("no such database", lambda: server_url(name=missing()), 78, "does not exist"),
        ("no such role", lambda: server_url(user=missing()), 78, "does not exist"),
        ("refused", lambda: server_url(port=closed_port()), 75, "Connection refused"),
    ],
    "mysql": [
        ("unknown database", lambda: server_url(name=missing()), 78, "Unknown database"),
        ("no such user", lambda: server_url(user=missing()[-30:]), 78, "Access denied"),
        ("refused", lambda: server_url(port=closed_port()), 75, "Can't connect"),
    ],
    "sqlite": SQLITE_CASES,
}


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    assert result.returncode == code, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


# Every command that uses the database (the bridge checks it first): its arguments.
COMMANDS: dict[str, tuple[str, ...]] = {
    "profiles_status": ("profiles_status",),
    "backfill_profiles": ("backfill_profiles",),
    "seed_users": ("seed_users", "5"),
    "signal_matrix": ("signal_matrix",),
    "receivers": ("receivers", "list"),
}


@pytest.mark.parametrize(
    ("url", "code", "fragment"),
    [case[1:] for case in CASES[VENDOR]],
    ids=[case[0] for case in CASES[VENDOR]],
)
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.django_db(transaction=True)
def test_a_database_that_cannot_be_used(manage, command, url, code, fragment):
    result = manage(*COMMANDS[command], env={"DATABASE_URL": url()})
    setting = "fix DATABASE_URL" if code == ExitCode.CONFIG else "DATABASE_URL"
    assert_one_line(result, code, "cannot connect to database 'default'", fragment, setting)


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unmigrated_database_exits_1(manage, command, tmp_path):
    path = tmp_path / "new.db"
    path.touch()  # SQLite reads an empty file as a database without tables
    result = manage(*COMMANDS[command], env={"DATABASE_URL": f"sqlite:///{path}"})
    assert_one_line(result, 1, "is not migrated", "manage.py migrate")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_missing_sqlite_file_exits_78_and_is_not_created(manage, command, tmp_path):
    """Regression: connecting created an empty file at the (mistyped) path, the command
    exited 1 "not migrated", and the advised migrate made a real database of it."""
    path = tmp_path / "typo.sqlite3"
    result = manage(*COMMANDS[command], env={"DATABASE_URL": f"sqlite:///{path}"})
    assert_one_line(result, 78, str(path), "fix DATABASE_URL", "manage.py migrate")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.django_db(transaction=True)
def test_an_unusable_lock_database_names_lock_database_url(manage):
    if VENDOR == "sqlite":
        url = "sqlite:////nonexistent-directory/db.sqlite3"
    else:
        url = server_url(name=missing())
    result = manage("backfill_profiles", env={"LOCK_DATABASE_URL": url})
    assert_one_line(result, 78, "cannot connect to database 'locks'", "fix LOCK_DATABASE_URL")


if VENDOR == "mysql":  # a PostgreSQL password: through PgBouncer (see the docstring)

    @pytest.mark.django_db(transaction=True)
    def test_a_wrong_password_exits_78_naming_the_setting(manage):
        password = secrets.token_urlsafe(12)
        with mysql_user_with_password(password) as user:
            right = server_url(user=user, password=password)
            result = manage("profiles_status", env={"DATABASE_URL": right})
            assert result.returncode == 0, result.stderr
            wrong_url = server_url(user=user, password="not-the-password")
            wrong = manage("profiles_status", env={"DATABASE_URL": wrong_url})
        line = assert_one_line(wrong, 78, "Access denied", "fix DATABASE_URL")
        assert "not-the-password" not in line and password not in line
