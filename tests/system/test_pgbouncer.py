"""Every command through a real PgBouncer in transaction mode, with its stock settings.

PgBouncer pools PostgreSQL connections only, so these tests are PostgreSQL's by
nature. Under SQLite and MariaDB the module collects nothing (``__test__``)
rather than skipping: a skip must never pass for green, and there is nothing of
theirs to test here. Under PostgreSQL a missing ``pgbouncer`` binary skips
locally and fails with ``CI=true`` (tests/helpers/pgbouncer.py).

Races are staged by waiting on ``pg_locks`` and ``pg_stat_activity`` (read on
a direct connection), never by sleeping.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.db import connection, connections

from profiles.models import Profile
from tests.helpers.pgbouncer import PgBouncer, running_pgbouncer
from tests.helpers.processes import spawned, wait_until
from tests.helpers.users import bulk_users, users

__test__ = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = secrets.token_urlsafe(16)


@pytest.fixture(scope="session")
def pgbouncer(django_db_setup, django_db_blocker) -> Iterator[PgBouncer]:
    """PgBouncer in front of the test database, and a role with a password behind it."""
    server = connections["default"].settings_dict
    database = server["NAME"]
    host, port = server["HOST"] or "127.0.0.1", int(server["PORT"] or 5432)
    # The same database behind a pool in statement mode, which allows no transaction.
    statement_pool = f"host={host} port={port} dbname={database} pool_mode=statement"
    with (
        django_db_blocker.unblock(),
        password_role(f"{database}_pw") as role,
        running_pgbouncer(
            server_host=host,
            server_port=port,
            users={server["USER"]: "", role: PASSWORD},
            databases={f"stmt_{database}": statement_pool},
        ) as bouncer,
    ):
        yield bouncer


@contextmanager
def password_role(name: str) -> Iterator[str]:
    """A login role with PASSWORD that may read everything; dropped afterwards."""
    with connection.cursor() as cursor:
        cursor.execute(f'DROP ROLE IF EXISTS "{name}"')
        cursor.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{PASSWORD}'")
        cursor.execute(f'GRANT pg_read_all_data TO "{name}"')
    try:
        yield name
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP ROLE IF EXISTS "{name}"')
        connection.close()


@pytest.fixture
def pooled(pgbouncer) -> dict[str, str]:
    """The environment of a command that reaches the test database through PgBouncer."""
    return {"DATABASE_URL": pgbouncer.url(connection.settings_dict["NAME"])}


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# -- staging on the server's own views --


def advisory_locks() -> int:
    """Advisory locks held in the test database (only the runs under test take any)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()"
        )
        return int(cursor.fetchone()[0])


def waiting_for(table: str) -> int:
    """Sessions waiting for a lock on ``table``."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass", [table]
        )
        return int(cursor.fetchone()[0])


def polling_for_the_lock(application_name: str) -> bool:
    """Has the client calling itself ``application_name`` asked for an advisory lock?"""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND query LIKE %s",
            [application_name, "%advisory_xact_lock%"],
        )
        return int(cursor.fetchone()[0]) > 0


@contextmanager
def table_locked(table: str) -> Iterator[Callable[[], None]]:
    """Another session, on a direct connection, holds a lock that conflicts with writes to
    ``table`` (SHARE: reads go on; docs/operations.md says which statements are bounded).
    Yields a function that releases it early."""
    other = connections.create_connection("default")
    try:
        other.ensure_connection()
        raw = other.connection
        raw.execute("BEGIN")
        raw.execute(f'LOCK TABLE "{table}" IN SHARE MODE')
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                raw.execute("ROLLBACK")
                released = True

        yield release
        release()
    finally:
        other.close()


# -- every command, unchanged settings --


def test_every_command_works_through_pgbouncer(manage, pooled):
    welcome = "profiles.receivers.send_welcome_email"
    runs = [
        (("seed_users", "3000", "--seed", "1"), 0),  # COPY
        (("seed_users", "50", "--via", "save", "--seed", "2", "--mute", welcome), 0),
        (("profiles_status", "--format", "json"), 0),
        (("backfill_profiles", "--check"), 1),  # users lack a profile
        (("backfill_profiles", "--dry-run"), 0),
        (("backfill_profiles", "--batch-size", "500"), 0),
        (("backfill_profiles", "--check"), 0),
        (("receivers", "off", welcome, "--for", "1h", "--reason", "pgbouncer test"), 0),
        (("receivers", "list"), 0),
        (("receivers", "on", welcome), 0),
        (("signal_matrix",), 0),
        (("check", "--database", "default"), 0),
        (("purge_seeded", "--no-input"), 0),
    ]
    for args, expected in runs:
        result = manage(*args, env=pooled)
        assert result.returncode == expected, (args, result.stderr)
    assert users().count() == 0
    assert Profile.objects.count() == 0


# -- the lock timeout holds --


@pytest.mark.parametrize(
    ("args", "table"),
    [
        (("backfill_profiles",), Profile._meta.db_table),
        (("seed_users", "500", "--seed", "3"), "auth_user"),
    ],
    ids=["backfill_profiles", "seed_users"],
)
def test_a_batch_behind_a_table_lock_gives_up_after_the_lock_timeout(manage, pooled, args, table):
    if args[0] == "backfill_profiles":
        bulk_users(300)
    before = (users().count(), Profile.objects.count())
    impatient = {**pooled, "DATABASE_LOCK_TIMEOUT_SECONDS": "1", "BATCH_RETRIES": "0"}
    with table_locked(table):
        started = time.monotonic()
        result = manage(*args, env=impatient, timeout=60)
        elapsed = time.monotonic() - started
    assert result.returncode == 75, result.stderr
    assert "lock timeout" in one_line(result.stderr)
    assert elapsed < 1 + 8, elapsed  # the timeout, plus interpreter start-up on a busy machine
    assert (users().count(), Profile.objects.count()) == before  # nothing half-written


# -- the run lock never leaks --


def test_the_backfill_lock_never_outlives_its_run(manage, pooled):
    made = len(bulk_users(500))
    for run in range(6):
        Profile.objects.all().delete()
        result = manage("backfill_profiles", "--batch-size", "100", env=pooled)
        assert result.returncode == 0, (run, result.stderr)
        assert Profile.objects.count() == made
        assert advisory_locks() == 0, run


def test_two_runs_through_pgbouncer_exclude_each_other(manage, pooled):
    bulk_users(300)
    patient = {**pooled, "DATABASE_LOCK_TIMEOUT_SECONDS": "120"}
    waiter = {**patient, "PGAPPNAME": "backfill-waiter"}  # libpq's; PgBouncer passes it on
    table = Profile._meta.db_table
    first_run = spawned("backfill_profiles", "--jobs", "1", env=patient)
    with table_locked(table) as release, first_run as first:
        # It holds the run lock, and its first batch waits for the table.
        wait_until(lambda: advisory_locks() == 1 and waiting_for(table) == 1, first)
        second = manage("backfill_profiles", env=pooled)
        assert second.returncode == 75, second.stderr
        assert "holds the lock" in one_line(second.stderr)
        with spawned("backfill_profiles", "--wait", "120", env=waiter) as third:
            wait_until(lambda: polling_for_the_lock("backfill-waiter"), first, third)
            release()
            _, err = first.communicate(timeout=60)
            assert first.returncode == 0, err
            out, err = third.communicate(timeout=60)  # takes the lock once the first let go
            assert third.returncode == 0, err
            assert "Nothing to do" in out
    assert Profile.objects.count() == users().count() == 300


def test_a_killed_run_leaves_no_lock_behind(manage, pooled):
    bulk_users(300)
    patient = {**pooled, "DATABASE_LOCK_TIMEOUT_SECONDS": "120"}
    table = Profile._meta.db_table
    with table_locked(table), spawned("backfill_profiles", "--jobs", "1", env=patient) as first:
        wait_until(lambda: advisory_locks() == 1 and waiting_for(table) == 1, first)
        first.kill()
        first.wait(timeout=30)
        # PgBouncer closes a server connection whose client left mid-transaction,
        # and the lock goes with the transaction.
        wait_until(lambda: advisory_locks() == 0)
    rerun = manage("backfill_profiles", env=pooled)
    assert rerun.returncode == 0, rerun.stderr
    assert Profile.objects.count() == users().count() == 300


# -- what needs a person exits 78 with the setting to fix --


def test_a_wrong_or_missing_password_exits_78_naming_the_setting(manage, pgbouncer):
    database = connection.settings_dict["NAME"]
    role = f"{database}_pw"
    right = manage(
        "profiles_status",
        env={"DATABASE_URL": pgbouncer.url(database, user=role, password=PASSWORD)},
    )
    assert right.returncode == 0, right.stderr
    for password in ("not-the-password", None):
        url = pgbouncer.url(database, user=role, password=password)
        result = manage("profiles_status", env={"DATABASE_URL": url})
        assert result.returncode == 78, result.stderr
        line = one_line(result.stderr)
        assert "fix DATABASE_URL" in line
        assert "not-the-password" not in line and PASSWORD not in line


def test_a_pool_in_statement_mode_exits_78_naming_the_setting(manage, pgbouncer):
    url = pgbouncer.url(f"stmt_{connection.settings_dict['NAME']}")
    bulk_users(10)
    for args in (("backfill_profiles",), ("backfill_profiles", "--no-lock")):
        result = manage(*args, env={"DATABASE_URL": url})
        assert result.returncode == 78, result.stderr
        line = one_line(result.stderr)
        assert "statement pooling mode" in line and "DATABASE_URL" in line
    assert Profile.objects.count() == 0
