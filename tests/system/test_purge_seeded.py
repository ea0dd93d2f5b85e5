"""purge_seeded in a real process, while seed_users runs in another.

The seeding run holds its run's lock for as long as its process lives; the
staging waits on the rows it commits (the lock is taken before its run's row
exists), never on a fixed sleep.
"""

from __future__ import annotations

import json
import signal

import pytest

from seeding.models import SeededUser
from tests.helpers.processes import spawned, wait_until
from tests.helpers.seeding import seed
from tests.helpers.users import users

pytestmark = pytest.mark.django_db(transaction=True)


def committed(number: int) -> int:
    return SeededUser.objects.filter(run__number=number).count()


def test_a_run_another_process_is_seeding_is_left_alone_until_it_ends(manage):
    assert seed(30).run_number == 1
    with spawned("seed_users", "2000000", "--batch-size", "500", "--seed", "5") as seeding:
        wait_until(lambda: committed(2) >= 500, seeding)
        purge = manage("purge_seeded", "--no-input")
        assert committed(2) >= 500  # none of run 2's users went
        seeding.send_signal(signal.SIGTERM)
        _, err = seeding.communicate(timeout=60)
    assert seeding.returncode == 143, err
    assert purge.returncode == 0, purge.stderr
    assert purge.stdout.splitlines() == [
        "Deleted 30 seeded user(s), 0 profile(s) and 0 welcome-mail record(s) from 1 seed run(s).",
        "Left 1 seed run(s) alone that are still in progress; "
        "run purge_seeded again when they have ended.",
    ]
    left = committed(2)
    assert users().count() == left

    again = manage("purge_seeded", "--no-input", "--format", "json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {
        "cancelled": False,
        "dry_run": False,
        "runs": 1,
        "users": left,
        "profiles": 0,
        "welcome_mails": 0,
        "untracked_runs": 0,
        "runs_in_progress": 0,
        "object_by_object": [],
    }
    assert not users().exists()
