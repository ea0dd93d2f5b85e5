"""backfill_profiles in process, through call_command: output, exit codes, options.

Its real processes (the lock, concurrent runs, signals) are tests/system/test_backfill_profiles.py;
--check and --dry-run for every user model are in tests/profiles/test_any_user_model.py.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from profiles.models import Profile
from tests.helpers.commands import run_command
from tests.helpers.users import bulk_users
from tests.profiles.coverage import assert_every_user_has_exactly_one_profile

User = get_user_model()


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
def test_limit_and_max_seconds_stop_and_say_how_to_resume():
    bulk_users(40)
    out, _, code = run_command(
        "backfill_profiles", "--max-seconds", "0.000001", "--batch-size", "10"
    )
    assert code == 0 and "Created 10 profile(s)" in out and "run again" in out
    out, _, code = run_command("backfill_profiles", limit=15, batch_size=10)
    assert code == 0 and "Created 15 profile(s)" in out and "--limit reached" in out
    assert Profile.objects.count() == 25


@pytest.mark.django_db
def test_json_and_verbosity_zero():
    bulk_users(5)
    out, err, code = run_command("backfill_profiles", verbosity=0)
    assert (out, err, code) == ("", "", 0)
    bulk_users(5, start=5)
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
