"""welcome_mails sync and suppress in process, through call_command: output, exit codes, options.

The services are tests/profiles/welcome/test_sync.py; the real processes (the
lock, SIGTERM) tests/system/test_welcome_sync.py.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import click
import pytest

from commands.management.commands.welcome_mails import group
from profiles.models import WelcomeMail
from profiles.welcome.joined import cutoff_reason
from profiles.welcome.records import record_new_user
from profiles.welcome.sync import LOCK_NAME as SYNC_LOCK
from tests.helpers.commands import run_command
from tests.helpers.cron import command_labels, held_elsewhere, metrics
from tests.helpers.users import bulk_users, users

pytestmark = pytest.mark.django_db

CUTOFF = datetime(2024, 6, 1, tzinfo=dt_timezone.utc)


@pytest.fixture(autouse=True)
def no_cutoff(settings):
    settings.WELCOME_MAIL_SINCE = None


def sync(*args, **options):
    return run_command("welcome_mails", "sync", *args, **options)


def suppress(*args, **options):
    return run_command("welcome_mails", "suppress", *args, **options)


def joined(made, when):
    users().filter(pk__in=[u.pk for u in made]).update(date_joined=when)


def test_sync_then_nothing_to_do(mailoutbox):
    bulk_users(120)
    out, err, code = sync("--batch-size", "50")
    assert code == 0, err
    assert out.startswith(
        "Created 120 welcome-mail record(s) (120 pending, 0 suppressed) in 3 batch(es)"
    )
    assert out.count("\n") == 1 and err == ""
    out, _, code = sync()
    assert (out.strip(), code) == ("Nothing to do: every user has a welcome-mail record.", 0)
    assert WelcomeMail.objects.count() == 120 and mailoutbox == []


def test_a_cutoff_from_the_setting_or_joined_since(settings):
    settings.WELCOME_MAIL_SINCE = CUTOFF
    made = bulk_users(10)
    joined(made[:4], CUTOFF - timedelta(days=1))
    joined(made[4:], CUTOFF + timedelta(days=2))
    out, _, code = sync("--dry-run")
    assert (code, out.strip()) == (
        0,
        "Dry run: would create 10 welcome-mail record(s) (6 pending, 4 suppressed); "
        "nothing was written.",
    )
    assert WelcomeMail.objects.count() == 0
    out, _, code = sync("--joined-since", "2024-06-02", "--format", "json")  # naive: UTC
    data = json.loads(out)
    assert (code, data["pending"], data["suppressed"]) == (0, 6, 4)
    assert data["cutoff"] == "2024-06-02T00:00:00Z"
    reasons = set(WelcomeMail.objects.filter(status="suppressed").values_list("reason", flat=True))
    assert reasons == {cutoff_reason(datetime(2024, 6, 2, tzinfo=dt_timezone.utc))}


def test_json_figures_and_verbosity_zero():
    bulk_users(5)
    out, err, code = sync(verbosity=0)
    assert (out, err, code) == ("", "", 0)
    bulk_users(5, start=5)
    data = json.loads(sync("--format", "json")[0])
    assert list(data) == [
        "created",
        "batches",
        "seconds",
        "records_per_second",
        "last_pk",
        "max_pk",
        "stopped",
        "shard",
        "jobs",
        "pending",
        "suppressed",
        "cutoff",
    ]
    assert (data["created"], data["pending"], data["stopped"], data["cutoff"]) == (5, 5, None, None)


def test_check_exits_1_while_users_lack_a_record():
    made = bulk_users(6)
    record_new_user(user=made[0], using="default")
    _, err, code = sync("--check")
    assert code == 1
    assert err.strip() == (
        "5 user(s) lack a welcome-mail record; run 'manage.py welcome_mails sync'."
    )
    out, _, code = sync("--check", "--format", "json")
    assert code == 1
    assert json.loads(out) == {
        "mode": "check",
        "shard": "1/1",
        "users_without_welcome_mail": 5,
        "would_create": 5,
    }
    assert WelcomeMail.objects.count() == 1
    sync()
    out, _, code = sync("--check")
    assert (code, out.strip()) == (0, "Every user has a welcome-mail record.")


def test_limit_and_max_seconds_say_how_to_resume():
    bulk_users(40)
    out, _, code = sync("--max-seconds", "0.000001", "--batch-size", "10")
    assert code == 0 and "Created 10 welcome-mail record(s)" in out and "run again" in out
    out, _, code = sync("--limit", "15", "--batch-size", "10")
    assert code == 0 and "Created 15 welcome-mail record(s)" in out and "--limit reached" in out
    assert WelcomeMail.objects.count() == 25


def test_a_shard_says_what_other_shards_lack():
    bulk_users(40)
    lacking = sum(pk % 2 for pk in users().values_list("pk", flat=True))  # shard 2/2
    out, _, code = sync("--shard", "1/2")
    assert code == 0 and out.startswith(f"Created {40 - lacking} welcome-mail record(s)")
    assert f"{lacking} user(s) of other shards lack a welcome-mail record." in out
    _, err, code = sync("--shard", "2/2", "--check")
    assert code == 1 and "run 'manage.py welcome_mails sync --shard 2/2'" in err


@pytest.mark.parametrize(
    "args",
    [
        ["--batch-size", "0"],
        ["--shard", "3/2"],
        ["--limit", "0"],
        ["--max-seconds", "nan"],
        ["--wait", "-1"],
        ["--jobs", "0"],
        ["--joined-since", "yesterday"],
        ["--joined-since", "2024-13-01"],
        ["--format", "yaml"],
    ],
)
def test_bad_sync_options_exit_2_and_write_nothing(args):
    bulk_users(5)
    _, err, code = sync(*args)
    assert code == 2, err
    assert err.strip().count("\n") == 0, err
    assert WelcomeMail.objects.count() == 0


@pytest.mark.parametrize(
    "args",
    [
        ["--joined-since", "2024-01-01"],
        ["--joined-since", "2024-01-01", "--dry-run"],
        ["--joined-since", "2024-01-01", "--no-lock"],
    ],
)
def test_a_cutoff_without_a_joined_field_is_a_configuration_error(settings, args):
    settings.WELCOME_MAIL_JOINED_FIELD = "joined_at"
    bulk_users(5)
    _, err, code = sync(*args)
    assert code == 78, err
    assert "WELCOME_MAIL_JOINED_FIELD" in err and err.strip().count("\n") == 0
    assert WelcomeMail.objects.count() == 0
    _, err, code = suppress("--joined-between", "2024-01-01", "2024-02-01", "--reason", "x")
    assert code == 78 and "WELCOME_MAIL_JOINED_FIELD" in err
    assert sync()[2] == 0  # no cutoff: the field is never read
    assert WelcomeMail.objects.count() == 5


def test_a_joined_field_that_is_not_a_date_time_is_a_configuration_error(settings):
    settings.WELCOME_MAIL_JOINED_FIELD = "username"
    settings.WELCOME_MAIL_SINCE = CUTOFF
    bulk_users(2)
    _, err, code = sync()
    assert code == 78 and "not a date-time field" in err


# -- suppress --


def test_suppress_a_range_text_and_json():
    inside, outside = bulk_users(6, "in"), bulk_users(3, "out")
    joined(inside, datetime(2024, 3, 5, 12, tzinfo=dt_timezone.utc))
    joined(outside, datetime(2024, 4, 1, tzinfo=dt_timezone.utc))  # the end is not in the range
    record_new_user(user=inside[0], using="default")
    WelcomeMail.objects.filter(user_id=inside[0].pk).update(status="sent")
    record_new_user(user=inside[1], using="default")
    args = [
        "--joined-between",
        "2024-03-01",
        "2024-04-01",
        "--reason",
        "imported from the old shop",
    ]
    out, err, code = suppress(*args, "--dry-run")
    assert code == 0, err
    assert out.strip() == (
        "Dry run: for users who joined from 2024-03-01T00:00:00+00:00 to before "
        "2024-04-01T00:00:00+00:00, would create 4 suppressed welcome-mail record(s) and "
        "suppress 1 pending or failed one(s); 1 sent or being sent left alone; nothing was written."
    )
    assert WelcomeMail.objects.count() == 2
    out, err, code = suppress(*args)
    assert code == 0, err
    assert out.strip() == (
        "Suppressed the welcome mail of users who joined from 2024-03-01T00:00:00+00:00 to "
        "before 2024-04-01T00:00:00+00:00: 4 new record(s), 1 pending or failed record(s) "
        "suppressed; 1 sent or being sent left alone."
    )
    assert WelcomeMail.objects.filter(status="suppressed").count() == 5
    assert not WelcomeMail.objects.filter(user__in=[u.pk for u in outside]).exists()
    data = json.loads(suppress(*args, "--format", "json")[0])
    assert data == {
        "joined_from": "2024-03-01T00:00:00Z",
        "joined_to": "2024-04-01T00:00:00Z",
        "reason": "imported from the old shop",
        "created": 0,
        "suppressed": 0,
        "left_alone": 1,
        "already_suppressed": 5,
        "dry_run": False,
    }


@pytest.mark.parametrize(
    "args",
    [
        ["--joined-between", "2024-03-01", "2024-04-01", "--reason", ""],
        ["--joined-between", "2024-03-01", "2024-04-01", "--reason", "   "],
        ["--joined-between", "2024-03-01", "2024-04-01"],  # no reason
        ["--joined-between", "2024-04-01", "2024-03-01", "--reason", "x"],
        ["--joined-between", "2024-04-01", "2024-04-01", "--reason", "x"],
        ["--joined-between", "2024-04-01", "--reason", "x"],
        ["--joined-between", "soon", "2024-04-01", "--reason", "x"],
        ["--reason", "x"],  # no range
    ],
)
def test_bad_suppress_arguments_exit_2_and_write_nothing(args):
    bulk_users(3)
    _, err, code = suppress(*args)
    assert code == 2, err
    assert err.strip().count("\n") == 0, err
    assert WelcomeMail.objects.count() == 0


def test_help_says_sync_sends_nothing():
    command = group.commands["sync"]
    text = " ".join(command.get_help(click.Context(command, info_name="sync")).split())
    assert "creates records only and sends nothing" in text
    assert "'welcome_mails send'" in text


# -- the cron contract: a held lock, --if-locked, --metrics-file, conflicting options --


def test_if_locked_skip_exits_0_silently_at_verbosity_0():
    bulk_users(4)
    with held_elsewhere(SYNC_LOCK):
        assert sync("--if-locked", "skip", "-v", "0") == ("", "", 0)
        out, err, code = sync("--if-locked", "skip")
        assert (code, err, out.strip()) == (
            0,
            "",
            "skipped: another welcome_mails sync run holds the lock on database 'default'.",
        )
        _, err, code = sync("--wait", "0.2")
        assert code == 75 and "waited 0.2 s for it" in err and "--wait SECONDS" not in err
        # The check counts under the sync's lock, and never skips: it fails.
        _, err, code = sync("--check")
        assert code == 75 and "holds the lock" in err
    assert WelcomeMail.objects.count() == 0


def test_the_metrics_file_counts_records_made_and_users_left(tmp_path):
    bulk_users(6)
    path = tmp_path / "sync.prom"
    assert sync("--limit", "4", "-v", "0", "--metrics-file", str(path))[2] == 0
    figures = metrics(path)
    assert (figures["last_run_rows"], figures["last_run_skipped"]) == (4, 0)
    assert figures["users_without_welcome_mail"] == 2
    with held_elsewhere(SYNC_LOCK):
        assert sync("--if-locked", "skip", "-v", "0", "--metrics-file", str(path))[2] == 0
    figures = metrics(path)
    assert (figures["last_run_exit_code"], figures["last_run_skipped"]) == (0, 1)
    assert figures["users_without_welcome_mail"] == 2


@pytest.mark.parametrize(
    ("args", "label"),
    [
        ([], "welcome_mails sync"),
        (["--check"], "welcome_mails sync --check"),
        (["--dry-run"], "welcome_mails sync --dry-run"),
        (["--check", "--shard", "1/2"], "welcome_mails sync --check --shard 1/2"),
    ],
)
def test_a_check_a_dry_run_and_a_shard_are_series_of_their_own(tmp_path, args, label):
    """Regression: a sync and its --check both wrote command="welcome_mails sync"."""
    path = tmp_path / "sync.prom"
    sync("-v", "0", "--metrics-file", str(path), *args)
    assert command_labels(path) == {label}


def test_users_left_stay_in_the_metrics_file_when_the_lock_stays_held(tmp_path):
    """Regression: a sync that waited and found the lock still held (exit 75) left
    users_without_welcome_mail out of its file."""
    bulk_users(3)
    path = tmp_path / "sync.prom"
    with held_elsewhere(SYNC_LOCK):
        _, _, code = sync("--wait", "0.1", "--metrics-file", str(path))
    figures = metrics(path)
    assert code == figures["last_run_exit_code"] == 75
    assert figures["users_without_welcome_mail"] == 3


@pytest.mark.parametrize(
    "args",
    [
        ["--check", "--dry-run"],
        ["--check", "--limit", "1"],
        ["--check", "--jobs", "2"],
        ["--check", "--joined-since", "2024-06-01"],
        # Regression: a monitoring check that skipped exited 0 having counted nothing.
        ["--check", "--if-locked", "skip"],
        ["--no-lock", "--wait", "1"],
        ["--no-lock", "--if-locked", "fail"],
    ],
)
def test_options_that_cannot_go_together_exit_2_with_one_line(args):
    bulk_users(3)
    out, err, code = sync(*args)
    assert (code, out) == (2, ""), err
    assert len(err.strip().splitlines()) == 1 and "cannot be used together" in err
    assert WelcomeMail.objects.count() == 0


def test_help_says_what_its_own_check_means():
    command = group.commands["sync"]
    text = " ".join(command.get_help(click.Context(command, info_name="sync")).split())
    assert "With --check it creates nothing and exits 0 when every user" in text
    assert "has a welcome-mail record, or 1 with one line" in text


def test_a_limit_that_covers_no_whole_range_of_users_says_so():
    """With a cutoff, the limit's records can all go to users after the first one in pk
    order, who joined before the cutoff and is left without: no user pk is covered."""
    first, *_ = bulk_users(5)
    users().filter(pk=first.pk).update(date_joined=CUTOFF - timedelta(days=1))
    users().exclude(pk=first.pk).update(date_joined=CUTOFF + timedelta(days=1))
    out, _, code = sync("--limit", "2", "--joined-since", CUTOFF.isoformat())
    assert code == 0
    assert (
        out.splitlines()[-1]
        == "Stopped within the first batch (--limit reached); run again to continue."
    )
    data = json.loads(sync("--limit", "2", "--joined-since", CUTOFF.isoformat(), format="json")[0])
    assert (data["created"], data["last_pk"]) == (2, None)
