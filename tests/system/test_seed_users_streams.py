"""A bulk seed on two streams (PostgreSQL's default) killed with SIGKILL, then resumed.

The committed batches must be a prefix of the run's users whatever was in flight on
either connection, so that the rerun, which skips as many users as the run has
committed, ends with exactly the users an uninterrupted run makes. Staged on the
database: the kill once batches have committed and both streams are inside a
batch, the check once the server has ended every transaction of the killed process.
"""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.utils import timezone

from seeding.generator import FakeUsers
from seeding.models import SeededUser
from seeding.userfields import user_columns
from tests.helpers.processes import completed, spawned, wait_until
from tests.helpers.seeding import required_field_values, username_values

pytestmark = [
    pytest.mark.applies_if(connection.vendor == "postgresql", reason="two streams: PostgreSQL"),
    pytest.mark.django_db(transaction=True),
]

COUNT, BATCH = 100_000, 500
ARGUMENTS = ("seed_users", str(COUNT), "--seed", "53", "--batch-size", str(BATCH))


def committed() -> int:
    return SeededUser.objects.filter(run__number=1).count()


def transactions_of_others() -> int:
    """Sessions on this database, other than this one, inside a transaction."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
        )
        return int(cursor.fetchone()[0])


def sequence_numbers() -> list[int]:
    """The n of every "seed1-<n>...." user, sorted: 1..N when they are a prefix of the run."""
    found = (re.match(r"seed1-(\d+)\.", name) for name in username_values())
    return sorted(int(match.group(1)) for match in found if match)


def test_a_killed_run_leaves_a_prefix_and_the_rerun_ends_with_the_same_users():
    options = [f"--field={name}={value}" for name, value in required_field_values().items()]
    with spawned(*ARGUMENTS, *options) as proc:
        # Killed with batches committed and both streams inside a batch (the run
        # lock's transaction is the third): one of them may be committing.
        wait_until(lambda: committed() >= 10 * BATCH and transactions_of_others() >= 3, proc)
        proc.kill()
        proc.communicate(timeout=30)
    # Both streams' transactions and the run lock's end with the killed session.
    wait_until(lambda: transactions_of_others() == 0)
    left = committed()
    assert 10 * BATCH <= left < COUNT and left % BATCH == 0
    assert sequence_numbers() == list(range(1, left + 1))

    rerun = completed(*ARGUMENTS, *options, "--format", "json")
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert (summary["run"], summary["resumed_after"], summary["created"]) == (
        1,
        left,
        COUNT - left,
    )
    columns = user_columns(
        password="!", joined=timezone.now(), field_values=required_field_values()
    )
    index = columns.generated[0][1]
    expected = {
        user[index] for user in FakeUsers(seed=53, run_number=1, locales=["en_US"]).take(COUNT)
    }
    assert username_values() == expected
    assert SeededUser.objects.count() == COUNT
