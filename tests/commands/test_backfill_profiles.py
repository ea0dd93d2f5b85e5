from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from dbtools.locks import database_lock
from profiles.models import Profile
from seeding.services import users_seed
from tests.conftest import PROJECT_DIR, child_environment, run_command

User = get_user_model()


def bulk_users(count: int) -> None:
    users_seed(count=count, via="bulk", batch_size=5000, seed=1, locales=["en_US"],
               password=None, using="default")  # fmt: skip


def assert_every_user_has_exactly_one_profile() -> None:
    users = User.objects.count()
    assert Profile.objects.count() == users
    assert Profile.objects.values("user").distinct().count() == users


def popen(*args: str) -> subprocess.Popen[str]:
    """A backfill in a process of its own; finish it with ``communicate()``, which
    closes its pipes (``wait()`` would leave them to the garbage collector)."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "backfill_profiles", *args],
        cwd=PROJECT_DIR,
        env={**os.environ, **child_environment()},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# -- in process, through call_command --


@pytest.mark.django_db
def test_backfill_then_nothing_to_do():
    bulk_users(120)
    out, _, code = run_command("backfill_profiles", batch_size=50)
    assert code == 0
    assert out.startswith("Created 120 profile(s) in 3 batch(es)")
    out, _, code = run_command("backfill_profiles")
    assert (out.strip(), code) == ("Nothing to do: every user has a profile.", 0)
    assert_every_user_has_exactly_one_profile()


@pytest.mark.django_db
def test_check_exits_1_while_users_lack_profiles_and_0_after():
    bulk_users(10)
    out, err, code = run_command("backfill_profiles", "--check")
    assert code == 1 and out == ""
    assert "10 user(s) lack a profile" in err
    assert Profile.objects.count() == 0
    run_command("backfill_profiles")
    out, _, code = run_command("backfill_profiles", "--check")
    assert (code, out.strip()) == (0, "Every user has a profile.")


@pytest.mark.django_db
def test_dry_run_counts_and_writes_nothing():
    bulk_users(25)
    out, _, code = run_command("backfill_profiles", dry_run=True, limit=10, format="json")
    assert code == 0
    assert json.loads(out) == {"mode": "dry_run", "shard": "1/1", "users_without_profile": 25,
                               "would_create": 10}  # fmt: skip
    assert Profile.objects.count() == 0


@pytest.mark.django_db
def test_limit_and_max_seconds_stop_and_say_how_to_resume():
    bulk_users(40)
    out, _, code = run_command("backfill_profiles", "--max-seconds", "0.000001", "--batch-size",
                               "10")  # fmt: skip
    assert code == 0 and "Created 10 profile(s)" in out and "run again" in out
    out, _, code = run_command("backfill_profiles", limit=15, batch_size=10)
    assert code == 0 and "Created 15 profile(s)" in out and "--limit reached" in out
    assert Profile.objects.count() == 25


@pytest.mark.django_db
def test_json_and_verbosity_zero():
    bulk_users(5)
    out, err, code = run_command("backfill_profiles", verbosity=0)
    assert (out, err, code) == ("", "", 0)
    bulk_users(5)
    data = json.loads(run_command("backfill_profiles", format="json")[0])
    assert data["created"] == 5 and data["stopped"] is None and data["shard"] == "1/1"
    assert data["jobs"] == 1  # inside the test's transaction, which other connections can't see


@pytest.mark.django_db(transaction=True)
def test_jobs_run_batches_on_several_connections():
    bulk_users(3000)
    out, _, code = run_command("backfill_profiles", jobs=2, batch_size=100, format="json")
    assert code == 0
    data = json.loads(out)
    assert data["jobs"] == (1 if connection.vendor == "sqlite" else 2)
    assert (data["created"], data["batches"], data["last_pk"]) == (3000, 30, data["max_pk"])
    assert_every_user_has_exactly_one_profile()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args",
    [
        ["--batch-size", "0"],
        ["--shard", "3/2"],
        ["--shard", "x"],
        ["--shard", "0/2"],
        ["--limit", "-1"],
        ["--max-seconds", "0"],
        ["--wait", "-1"],
        ["--jobs", "0"],
        # Beyond what the database can bind or hold:
        ["--limit", str(2**63)],
        ["--shard", f"1/{2**63}"],
        ["--shard", f"1/{2**31}"],
        ["--max-seconds", "nan"],
        ["--max-seconds", "inf"],
        ["--wait", "nan"],
        ["--wait", "inf"],
        ["--check", "--shard", f"1/{2**63}"],
    ],
)
def test_bad_options_exit_2_and_write_nothing(args):
    bulk_users(5)
    _, err, code = run_command("backfill_profiles", *args)
    assert code == 2, err
    assert err.strip().count("\n") == 0, err
    assert Profile.objects.count() == 0


@pytest.mark.django_db
def test_the_largest_limit_shard_count_and_batch_size_every_backend_binds():
    bulk_users(5)
    _, err, code = run_command("backfill_profiles", "--limit", str(2**63 - 1), "--dry-run")
    assert code == 0, err
    shard = f"1/{2**31 - 1}"  # users with pk % N == 0: none
    out, err, code = run_command("backfill_profiles", "--shard", shard, "--check")
    assert (code, out.strip()) == (
        0,
        f"Every user of shard {shard} has a profile; 5 user(s) of other shards lack one.",
    ), err
    out, err, code = run_command("backfill_profiles", "--shard", shard, "--no-lock")
    assert code == 0 and out.startswith("Nothing to do: every user of shard"), err
    _, err, code = run_command(
        "backfill_profiles", "--limit", str(2**63 - 1), "--batch-size", str(2**64), "--no-lock"
    )
    assert (code, Profile.objects.count()) == (0, 5), err


@pytest.mark.django_db
def test_a_shard_says_what_is_true_of_the_shard_and_of_the_table():
    """Regression: a finished shard said "every user has a profile" while the
    other shard's users had none."""
    bulk_users(80)
    lacking = sum(pk % 2 for pk in User.objects.values_list("pk", flat=True))  # shard 2/2
    out, _, code = run_command("backfill_profiles", "--shard", "1/2")
    assert code == 0 and out.startswith(f"Created {80 - lacking} profile(s)")
    assert f"{lacking} user(s) of other shards lack a profile." in out
    out, _, code = run_command("backfill_profiles", "--shard", "1/2")
    assert (code, out.strip()) == (
        0,
        f"Nothing to do: every user of shard 1/2 has a profile; {lacking} user(s) of other "
        "shards lack one.",
    )
    out, _, code = run_command("backfill_profiles", "--shard", "1/2", "--check")
    assert (code, out.strip()) == (
        0,
        f"Every user of shard 1/2 has a profile; {lacking} user(s) of other shards lack one.",
    )
    out, _, code = run_command("backfill_profiles", "--shard", "1/2", "--dry-run")
    assert out.strip() == (
        "Dry run: would create 0 profile(s) for shard 1/2; nothing was written. "
        f"{lacking} user(s) of other shards lack one."
    )
    out, _, code = run_command("backfill_profiles", "--shard", "1/2", "--check", format="json")
    assert json.loads(out) == {
        "mode": "check",
        "shard": "1/2",
        "users_without_profile": 0,
        "would_create": 0,
        "users_without_profile_in_shard": 0,
        "users_without_profile_in_table": lacking,
    }
    _, err, code = run_command("backfill_profiles", "--shard", "2/2", "--check")
    assert code == 1
    assert f"{lacking} user(s) of shard 2/2 lack a profile ({lacking} in the whole table)" in err
    data = json.loads(run_command("backfill_profiles", "--shard", "2/2", format="json")[0])
    assert data["created"] == lacking
    assert (data["users_without_profile_in_shard"], data["users_without_profile_in_table"]) == (
        0,
        0,
    )
    out, _, _ = run_command("backfill_profiles", "--shard", "2/2")
    assert out.strip() == "Nothing to do: every user has a profile."


# -- real processes --


@pytest.mark.django_db(transaction=True)
def test_a_held_lock_makes_another_run_exit_75_then_wait_succeeds():
    bulk_users(50)
    with database_lock("backfill_profiles", using="default"):
        proc = popen()
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 75, err
        assert err.strip().count("\n") == 0
        assert "another backfill_profiles run holds the lock" in err
        started = time.monotonic()
        waited = popen("--wait", "1")
        _, err = waited.communicate(timeout=60)
        assert waited.returncode == 75 and time.monotonic() - started >= 1
        other_shard = popen("--shard", "1/2")  # each shard has its own lock
        other_shard.communicate(timeout=60)
        assert other_shard.returncode == 0
    assert Profile.objects.count() == 25
    proc = popen()
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert_every_user_has_exactly_one_profile()


@pytest.mark.django_db(transaction=True)
def test_two_runs_started_together_create_each_profile_once():
    bulk_users(20000)
    procs = [popen("--batch-size", "500", "--format", "json") for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes in ([0, 0], [0, 75]), results
    created = [json.loads(out)["created"] for (out, _), p in zip(results, procs, strict=True)
               if p.returncode == 0]  # fmt: skip
    assert sum(created) == 20000
    assert_every_user_has_exactly_one_profile()


@pytest.mark.django_db(transaction=True)
def test_waiting_runs_both_succeed():
    bulk_users(5000)
    procs = [popen("--batch-size", "500", "--wait", "60", "--format", "json") for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert sum(json.loads(out)["created"] for out, _ in results) == 5000
    assert_every_user_has_exactly_one_profile()


@pytest.mark.django_db(transaction=True)
def test_without_the_lock_concurrent_runs_still_create_each_profile_once():
    bulk_users(20000)
    procs = [popen("--no-lock", "--batch-size", "300", "--format", "json") for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results
    # The reported counts are the true rows inserted, even though the runs raced.
    assert sum(json.loads(out)["created"] for out, _ in results) == 20000
    assert_every_user_has_exactly_one_profile()


@pytest.mark.django_db(transaction=True)
def test_two_shards_in_parallel_cover_everything_once():
    bulk_users(20000)
    procs = [popen("--shard", f"{k}/2", "--batch-size", "1000", "--format", "json")
             for k in (1, 2)]  # fmt: skip
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert [json.loads(out)["created"] for out, _ in results] == [10000, 10000]
    assert_every_user_has_exactly_one_profile()


def wait_for_profiles(minimum: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while Profile.objects.count() < minimum:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigterm_finishes_the_batches_in_flight_and_a_rerun_completes(jobs):
    bulk_users(60000)
    proc = popen("--batch-size", "100", "--format", "json", "--jobs", jobs)
    wait_for_profiles(300, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    reported = json.loads(out)
    assert reported["stopped"] == "signal"
    assert reported["created"] == Profile.objects.count() < 60000
    assert Profile.objects.count() % 100 == 0  # whole batches only
    assert "interrupted" in err and "run again" in err
    rerun = popen("--format", "json")
    out, _ = rerun.communicate(timeout=60)
    assert rerun.returncode == 0
    assert json.loads(out)["created"] == 60000 - reported["created"]
    assert_every_user_has_exactly_one_profile()


@pytest.mark.django_db(transaction=True)
def test_sigkill_leaves_no_stale_lock():
    bulk_users(60000)
    proc = popen("--batch-size", "100")
    wait_for_profiles(300, proc)
    proc.kill()
    proc.communicate(timeout=30)
    if connection.vendor == "postgresql":
        time.sleep(0.5)  # the server notices the closed socket
    rerun = popen()
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert_every_user_has_exactly_one_profile()
