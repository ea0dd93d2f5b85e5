"""backfill_profiles in process, through call_command: output, exit codes, options.

Its real processes (the lock, concurrent runs, signals) are tests/system/test_backfill_profiles.py;
--check and --dry-run for every user model are in tests/profiles/test_any_user_model.py.
"""

from __future__ import annotations

import contextlib
import json
import signal

import click
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from commands.management.commands import backfill_profiles
from dbtools.stopping import StopRequest
from profiles.models import Profile
from tests.helpers.commands import run_command
from tests.helpers.cron import command_labels, held_elsewhere, metrics
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


# -- the cron contract: a held lock, --if-locked, --metrics-file --


@pytest.mark.django_db
def test_if_locked_skip_exits_0_and_says_so_only_above_verbosity_0():
    bulk_users(5)
    with held_elsewhere("backfill_profiles"):
        out, err, code = run_command("backfill_profiles", "--if-locked", "skip")
        assert (code, err) == (0, "")
        assert out.strip() == (
            "skipped: another backfill_profiles run holds the lock on database 'default'."
        )
        assert run_command("backfill_profiles", "--if-locked", "skip", "-v", "0") == ("", "", 0)
        out, _, code = run_command("backfill_profiles", "--if-locked", "skip", format="json")
        assert code == 0 and json.loads(out)["skipped"] is True
        # --check counts under the run's lock, and never skips: it fails.
        _, err, code = run_command("backfill_profiles", "--check")
        assert code == 75 and "holds the lock" in err
    assert Profile.objects.count() == 0


@pytest.mark.django_db
def test_a_wait_that_runs_out_says_how_long_it_waited_and_what_to_do():
    """Regression: after --wait 10 it still advised "pass --wait SECONDS"."""
    with held_elsewhere("backfill_profiles"):
        _, at_once, code = run_command("backfill_profiles")
        assert code == 75 and "pass --wait SECONDS" in at_once
        _, waited, code = run_command("backfill_profiles", "--wait", "0.3")
    assert code == 75 and len(waited.strip().splitlines()) == 1
    assert "waited 0.3 s for it; try again later, or pass a longer --wait" in waited
    assert "pass --wait SECONDS" not in waited
    assert "--if-locked skip" in waited


@pytest.mark.django_db
def test_the_metrics_file_says_what_the_run_did_and_whether_it_skipped(tmp_path):
    bulk_users(7)
    path = tmp_path / "backfill.prom"
    with held_elsewhere("backfill_profiles"):
        assert run_command(
            "backfill_profiles", "--if-locked", "skip", "-v", "0", "--metrics-file", str(path)
        ) == ("", "", 0)
    skipped = metrics(path)
    assert (skipped["last_run_exit_code"], skipped["last_run_skipped"]) == (0, 1)
    assert (skipped["last_run_rows"], skipped["users_without_profile"]) == (0, 7)
    assert run_command("backfill_profiles", "-v", "0", "--metrics-file", str(path))[2] == 0
    ran = metrics(path)
    assert (ran["last_run_exit_code"], ran["last_run_skipped"]) == (0, 0)
    assert (ran["last_run_rows"], ran["users_without_profile"]) == (7, 0)
    bulk_users(2, start=7)
    _, _, code = run_command("backfill_profiles", "--check", "--metrics-file", str(path))
    checked = metrics(path)
    assert code == checked["last_run_exit_code"] == 1
    assert (checked["last_run_rows"], checked["users_without_profile"]) == (0, 2)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "label"),
    [
        ([], "backfill_profiles"),
        (["--check"], "backfill_profiles --check"),
        (["--dry-run"], "backfill_profiles --dry-run"),
        (["--shard", "2/4"], "backfill_profiles --shard 2/4"),
        (["--check", "--shard", "2/4"], "backfill_profiles --check --shard 2/4"),
    ],
)
def test_a_check_a_dry_run_and_a_shard_are_series_of_their_own(tmp_path, args, label):
    """Regression: a run and its --check both wrote command="backfill_profiles", so two
    files held the same series (node_exporter rejects them) or, in one file, the check's
    exit 1 replaced the run's outcome."""
    path = tmp_path / "m.prom"
    run_command("backfill_profiles", "-v", "0", "--metrics-file", str(path), *args)
    assert command_labels(path) == {label}


@pytest.mark.django_db
def test_users_left_stay_in_the_metrics_file_when_the_lock_stays_held(tmp_path):
    """Regression: a run that waited and found the lock still held (exit 75) left
    users_without_profile out of its file."""
    bulk_users(3)
    path = tmp_path / "m.prom"
    with held_elsewhere("backfill_profiles"):
        _, _, code = run_command("backfill_profiles", "--wait", "0.1", "--metrics-file", str(path))
    figures = metrics(path)
    assert code == figures["last_run_exit_code"] == 75
    assert figures["users_without_profile"] == 3


@pytest.mark.django_db
def test_users_left_stay_in_the_metrics_file_when_a_signal_stops_the_run(tmp_path, monkeypatch):
    """Regression: an interrupted run (exit 143) left users_without_profile out of its file."""
    bulk_users(5)

    @contextlib.contextmanager
    def sigterm_at_once():
        stop = StopRequest()
        stop.request(signal.SIGTERM)
        yield stop

    monkeypatch.setattr(backfill_profiles, "stop_on_signals", sigterm_at_once)
    path = tmp_path / "m.prom"
    _, _, code = run_command(
        "backfill_profiles", "--batch-size", "2", "--jobs", "1", "--metrics-file", str(path)
    )
    figures = metrics(path)
    assert code == figures["last_run_exit_code"] == 143
    assert figures["users_without_profile"] == 5 - Profile.objects.count()


@pytest.mark.django_db
def test_a_sharded_check_counts_under_its_shards_lock_and_only_there():
    """What docs/cron.md says of shards: a check per shard (--check --shard K/N) waits for
    that shard's run; an unsharded check takes another lock and does not."""
    bulk_users(4)
    with held_elsewhere("backfill_profiles:2/4"):
        _, err, code = run_command("backfill_profiles", "--check", "--shard", "2/4")
        assert code == 75 and "holds the lock" in err and "shard 2/4" in err
        _, err, code = run_command("backfill_profiles", "--check")
        assert code == 1 and "4 user(s) lack a profile" in err


@pytest.mark.django_db
def test_only_a_metrics_file_costs_the_count_of_users_without_a_profile(tmp_path):
    bulk_users(3)

    def counts_missing(*args: str) -> bool:
        with CaptureQueriesContext(connection) as queries:
            assert run_command("backfill_profiles", "-v", "0", *args)[2] == 0
        return any("COUNT(" in q["sql"] and "IS NULL" in q["sql"] for q in queries)

    assert not counts_missing()
    assert counts_missing("--metrics-file", str(tmp_path / "m.prom"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args",
    [
        ["--check", "--dry-run"],
        ["--check", "--limit", "5"],
        ["--check", "--jobs", "1"],
        ["--check", "--batch-size", "10"],
        ["--check", "--max-seconds", "5"],
        # Regression: a monitoring check that skipped exited 0 having counted nothing.
        ["--check", "--if-locked", "skip"],
        ["--no-lock", "--wait", "1"],
        ["--no-lock", "--if-locked", "skip"],
        ["--dry-run", "--no-lock", "--wait", "0"],
    ],
)
def test_options_that_cannot_go_together_exit_2_with_one_line(args):
    """Regression: --check --dry-run ignored --dry-run."""
    bulk_users(5)
    out, err, code = run_command("backfill_profiles", *args)
    assert (code, out) == (2, ""), err
    assert len(err.strip().splitlines()) == 1 and "cannot be used together" in err
    assert Profile.objects.count() == 0


@pytest.mark.django_db
def test_a_dry_run_takes_the_options_of_the_run_it_previews():
    bulk_users(5)
    out, _, code = run_command(
        "backfill_profiles", "--dry-run", "--limit", "3", "--jobs", "1", "--wait", "1"
    )
    assert (code, out.strip()) == (0, "Dry run: would create 3 profile(s); nothing was written.")


@pytest.mark.django_db
def test_limit_reports_the_last_user_pk_it_covered():
    """Regression: --limit 10 said "Stopped at user pk 608054 of 613054" (the end of
    its batch) when only users up to 603064 had been covered."""
    made = bulk_users(40)
    out, _, code = run_command("backfill_profiles", "--limit", "15", "--batch-size", "100")
    assert code == 0
    assert out.splitlines()[-1] == (
        f"Stopped after user pk {made[14].pk} of {made[-1].pk} (--limit reached); "
        "run again to continue."
    )
    data = json.loads(run_command("backfill_profiles", "--limit", "5", format="json")[0])
    assert (data["created"], data["last_pk"], data["max_pk"]) == (5, made[19].pk, made[-1].pk)


def test_help_says_what_its_own_check_means():
    command = backfill_profiles.command
    epilog = " ".join(
        command.get_help(click.Context(command, info_name="backfill_profiles")).split()
    )
    assert "With --check it creates nothing and exits 0 when every user" in epilog
    assert "has a profile, or 1 with one line saying how many lack one" in epilog
    assert "Exit codes:" in epilog
