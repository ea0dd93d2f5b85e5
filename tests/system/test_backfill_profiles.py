"""backfill_profiles in real processes: the run lock, concurrent runs, SIGTERM and SIGKILL."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

import pytest
from django.db import connection

from dbtools.locks import database_lock
from profiles.models import Profile
from tests.helpers.cron import metrics
from tests.helpers.locking import waits_for_run_lock
from tests.helpers.processes import spawned, wait_until
from tests.helpers.users import bulk_users, create_user, users
from tests.profiles.coverage import (
    assert_every_user_has_exactly_one_profile,
    json_pk,
    users_with_gaps,
)

# A real process sees only committed users.
pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def backfills(*runs: Sequence[str]) -> Iterator[list[subprocess.Popen[str]]]:
    """A backfill_profiles process for each argument list, all started at once."""
    with ExitStack() as stack:
        yield [stack.enter_context(spawned("backfill_profiles", *args)) for args in runs]


def outcomes(procs: list[subprocess.Popen[str]]) -> list[tuple[str, str]]:
    return [proc.communicate(timeout=120) for proc in procs]


def test_a_held_lock_makes_another_run_exit_75_then_wait_succeeds(manage):
    bulk_users(50)
    with database_lock("backfill_profiles", using="default"):
        held = manage("backfill_profiles", timeout=60)
        assert held.returncode == 75, held.stderr
        assert held.stderr.strip().count("\n") == 0
        assert "another backfill_profiles run holds the lock" in held.stderr
        started = time.monotonic()
        waited = manage("backfill_profiles", "--wait", "1", timeout=60)
        assert waited.returncode == 75 and time.monotonic() - started >= 1
        other_shard = manage("backfill_profiles", "--shard", "1/2", timeout=60)  # its own lock
        assert other_shard.returncode == 0
    assert Profile.objects.count() == 25
    assert manage("backfill_profiles", timeout=60).returncode == 0
    assert_every_user_has_exactly_one_profile()


def test_two_runs_started_together_create_each_profile_once():
    bulk_users(20000)
    with backfills(*[["--batch-size", "500", "--format", "json"]] * 2) as procs:
        results = outcomes(procs)
    codes = sorted(p.returncode for p in procs)
    assert codes in ([0, 0], [0, 75]), results
    created = [
        json.loads(out)["created"]
        for (out, _), p in zip(results, procs, strict=True)
        if p.returncode == 0
    ]
    assert sum(created) == 20000
    assert_every_user_has_exactly_one_profile()


def test_waiting_runs_both_succeed():
    bulk_users(5000)
    with backfills(*[["--batch-size", "500", "--wait", "60", "--format", "json"]] * 2) as procs:
        results = outcomes(procs)
    assert [p.returncode for p in procs] == [0, 0], results
    assert sum(json.loads(out)["created"] for out, _ in results) == 5000
    assert_every_user_has_exactly_one_profile()


def test_without_the_lock_concurrent_runs_still_create_each_profile_once():
    bulk_users(20000)
    with backfills(*[["--no-lock", "--batch-size", "300", "--format", "json"]] * 3) as procs:
        results = outcomes(procs)
    assert [p.returncode for p in procs] == [0, 0, 0], results
    # The reported counts are the true rows inserted, even though the runs raced.
    assert sum(json.loads(out)["created"] for out, _ in results) == 20000
    assert_every_user_has_exactly_one_profile()


def test_two_shards_in_parallel_cover_everything_once():
    bulk_users(20000)
    shards = [["--shard", f"{k}/2", "--batch-size", "1000", "--format", "json"] for k in (1, 2)]
    with backfills(*shards) as procs:
        results = outcomes(procs)
    assert [p.returncode for p in procs] == [0, 0], results
    assert [json.loads(out)["created"] for out, _ in results] == [10000, 10000]
    assert_every_user_has_exactly_one_profile()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigterm_finishes_the_batches_in_flight_and_a_rerun_completes(manage, jobs):
    bulk_users(60000)
    args = ["--batch-size", "100", "--format", "json", "--jobs", jobs]
    with spawned("backfill_profiles", *args) as proc:
        wait_until(lambda: Profile.objects.count() >= 300, proc)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert time.monotonic() - sent < 5  # the batches in flight, not the whole run
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    reported = json.loads(out)
    assert reported["stopped"] == "signal"
    assert reported["created"] == Profile.objects.count() < 60000
    assert Profile.objects.count() % 100 == 0  # whole batches only
    assert "interrupted" in err and "run again" in err
    rerun = manage("backfill_profiles", "--format", "json", timeout=60)
    assert rerun.returncode == 0
    assert json.loads(rerun.stdout)["created"] == 60000 - reported["created"]
    assert_every_user_has_exactly_one_profile()


@pytest.mark.any_user_model
def test_a_real_run_with_two_jobs(manage):
    without = users_with_gaps(200)
    create_user(0, "signup")
    result = manage("backfill_profiles", "--batch-size", "9", "--jobs", "2", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["jobs"] == (1 if connection.vendor == "sqlite" else 2)
    assert data["created"] == len(without)
    assert data["last_pk"] == data["max_pk"] == json_pk(users().order_by("pk").last().pk)
    assert_every_user_has_exactly_one_profile()
    rerun = manage("backfill_profiles", "--check")
    assert (rerun.returncode, rerun.stdout.strip()) == (0, "Every user has a profile.")


def test_sigterm_while_waiting_for_the_lock_is_143_with_its_metrics_file(tmp_path):
    # Before the batches start, no stop_on_signals is in place: the bridge's own
    # SIGTERM handler ends the run as exit 143, still writing how it ended.
    metrics_file = tmp_path / "backfill.prom"
    args = ["-v", "0", "--wait", "60", "--metrics-file", str(metrics_file)]
    with (
        database_lock("backfill_profiles", using="default"),
        spawned("backfill_profiles", *args) as proc,
    ):
        wait_until(
            lambda: waits_for_run_lock(connection, ["backfill_profiles"], pid=proc.pid), proc
        )
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert metrics(metrics_file)["last_run_exit_code"] == 143
