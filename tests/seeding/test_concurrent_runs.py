"""Runs with the same --seed in real processes: a run in progress is never resumed by another.

Each run holds a lock of its own while its process lives. The staging waits on
the database (committed rows, the run's lock) and on the processes, never on
a fixed sleep. The slow run's --batch-size is 500 times smaller than the fast
runs': the same users (the batch size changes nothing about them), at a small
fraction of the speed, so it is still inserting while the others start and end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from dbtools.locks import LockHeld, database_lock
from seeding.models import SeededUser, SeedRun
from seeding.services import run_lock
from tests.conftest import PROJECT_DIR, child_environment
from tests.helpers.seeding import username_values
from tests.helpers.users import users

pytestmark = pytest.mark.django_db(transaction=True)

COUNT = 200_000
SAME_ARGUMENTS = ("seed_users", str(COUNT), "--seed", "41", "--format", "json")


def start(batch_size: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(PROJECT_DIR / "manage.py"),
            *SAME_ARGUMENTS,
            "--batch-size",
            str(batch_size),
        ],
        cwd=PROJECT_DIR,
        env={**os.environ, **child_environment()},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition: Callable[[], bool], *running: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        for proc in running:
            assert proc.poll() is None, (proc.args, proc.communicate())
        assert time.monotonic() < deadline, "timed out waiting for the runs to make progress"
        time.sleep(0.02)


def committed(number: int) -> int:
    return SeededUser.objects.filter(run__number=number).count()


def lock_free(number: int) -> bool:
    try:
        with database_lock(run_lock(number), using="default"):
            return True
    except LockHeld:
        return False


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def test_a_run_in_progress_is_never_resumed_and_a_dead_one_is():
    fast = start(batch_size=5000)
    wait_until(lambda: committed(1) >= 5000, fast)
    slow = start(batch_size=10)  # same arguments, while run 1 is inserting
    wait_until(lambda: committed(2) >= 10, fast, slow)
    first = finish(fast)
    assert (first["run"], first["created"]) == (1, COUNT)

    # Run 2 is still inserting, and nothing else holds a lock for this seed.
    third = start(batch_size=5000)
    wait_until(lambda: committed(3) >= 5000, slow, third)
    slow.kill()
    slow.communicate(timeout=30)
    left_at = committed(2)
    assert 0 < left_at < COUNT
    wait_until(lambda: lock_free(2))  # the server has noticed the killed session
    resumer = start(batch_size=5000)

    results = [finish(third), finish(resumer)]
    assert [(r["run"], r["resumed_after"], r["created"]) for r in results] == [
        (3, 0, COUNT),
        (2, left_at, COUNT - left_at),
    ]
    assert [
        (r.number, r.created, r.finished_at is not None) for r in SeedRun.objects.order_by("number")
    ] == [(1, COUNT, True), (2, COUNT, True), (3, COUNT, True)]
    assert users().count() == len(username_values()) == 3 * COUNT
