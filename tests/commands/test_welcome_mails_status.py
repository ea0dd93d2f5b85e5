"""welcome_mails status: counts per state, the oldest pending age, and --check for monitoring."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from commands.exitcodes import ExitCode
from tests.helpers.commands import run_command
from tests.helpers.cron import command_labels, metrics
from tests.helpers.users import bulk_users, create_user
from tests.profiles.welcome.states import record

pytestmark = [pytest.mark.any_user_model, pytest.mark.django_db]


def status(*args, **options):
    return run_command("welcome_mails", "status", *args, **options)


@pytest.fixture
def some_mails():
    """2 pending (one 2 hours old), 1 sent, 1 suppressed, and 1 user without a record."""
    a, b, c, d, _ = bulk_users(5)
    record(a, "pending", age=timedelta(hours=2, minutes=3))
    record(b, "pending")
    record(c, "sent", age=timedelta(days=5))
    record(d, "suppressed")


def test_counts_per_state_and_the_oldest_pending_age(some_mails):
    out, err, code = status()
    assert code == 0, err
    assert out.strip() == (
        "Welcome mails: 4 record(s): 1 sent, 2 pending (oldest 2h 3m), 0 sending, "
        "1 suppressed, 0 failed; 1 user(s) without one."
    )


def test_json_is_one_object_with_every_state(some_mails):
    out, err, code = status(format="json")
    assert code == 0, err
    values = json.loads(out)
    assert values.pop("oldest_pending_created_at")  # an ISO date-time
    assert values.pop("oldest_pending_age_seconds") // 60 == 123
    assert values == {
        "database": "default",
        "records": 4,
        "pending": 2,
        "sending": 0,
        "sent": 1,
        "suppressed": 1,
        "failed": 0,
        "without_record": 1,
    }


def test_verbosity_2_says_which_command_does_the_work(some_mails):
    out, _, _ = status(verbosity=2)
    assert "'manage.py welcome_mails sync' creates the missing records." in out
    assert "'manage.py welcome_mails send' delivers the pending ones." in out


def test_an_empty_database():
    out, _, code = status(format="json")
    assert code == 0
    assert json.loads(out)["oldest_pending_created_at"] is None
    assert "0 pending, " in status()[0]  # no age without a pending record


def test_check_passes_silently_at_verbosity_0_when_nothing_is_overdue():
    [user] = bulk_users(1)
    record(user, "pending", age=timedelta(minutes=59))
    out, err, code = status("--check", verbosity=0)
    assert (out, err, code) == ("", "", 0)


def test_check_fails_on_a_pending_record_older_than_max_age(some_mails):
    out, err, code = status("--check", verbosity=0)
    assert code == ExitCode.FAILED
    assert out == ""
    assert err.count("\n") == 0
    assert "the oldest pending welcome mail has waited 2h 3m, more than --max-age 1h" in err
    assert status("--check", "--max-age", "3h", verbosity=0)[2] == 0
    assert status("--check", "--max-age", "1h30m", verbosity=0)[2] == ExitCode.FAILED
    # Without --check the same state is only reported.
    assert status("--max-age", "1m", verbosity=0)[2] == 0


def test_check_fails_on_any_failed_record():
    a, b = bulk_users(2)
    record(a, "failed")
    record(b, "failed")
    _, err, code = status("--check")
    assert code == ExitCode.FAILED
    assert err == "2 welcome mail(s) failed ('welcome_mails retry' makes them pending again)"


def test_check_with_both_problems_says_both_in_one_line(some_mails):
    [user] = bulk_users(1, start=10)
    record(user, "failed")
    _, err, code = status("--check")
    assert code == ExitCode.FAILED
    assert "more than --max-age 1h" in err and "1 welcome mail(s) failed" in err
    assert "\n" not in err


def test_check_in_json_carries_the_verdict(some_mails):
    out, err, code = status("--check", "--max-age", "2h", format="json")
    assert code == ExitCode.FAILED
    values = json.loads(out)
    assert values["max_age_seconds"] == 7200
    assert values["problem"] == err
    out, _, code = status("--check", "--max-age", "1d", format="json")
    assert (code, json.loads(out)["problem"]) == (0, None)


def test_records_written_by_save_are_counted(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        create_user(1)
    assert json.loads(status(format="json")[0])["pending"] == 1


@pytest.mark.parametrize("bad", ["0s", "soon", "400d"])
def test_a_bad_max_age_is_usage(bad):
    _, err, code = status("--check", "--max-age", bad)
    assert code == ExitCode.USAGE
    assert "--max-age" in err


def test_the_metrics_file_counts_the_users_without_a_record(some_mails, tmp_path):
    path = tmp_path / "status.prom"
    _, _, code = status("--check", "-v", "0", "--metrics-file", str(path))
    figures = metrics(path)
    assert code == figures["last_run_exit_code"] == ExitCode.FAILED  # the 2-hour-old one
    assert figures["users_without_welcome_mail"] == 1


def test_the_metrics_file_has_the_figures_its_check_judges(some_mails, tmp_path):
    """Regression: only users_without_welcome_mail was exported, not the failed records
    and the oldest pending age that --check fails on."""
    a, b = bulk_users(2, start=10)
    record(a, "failed")
    record(b, "sending", age=timedelta(minutes=5))
    path = tmp_path / "status.prom"
    assert status("-v", "0", "--metrics-file", str(path))[2] == 0
    figures = metrics(path)
    assert figures["welcome_mails_failed"] == 1
    assert (figures["welcome_mails_pending"], figures["welcome_mails_sending"]) == (2, 1)
    assert figures["welcome_mail_oldest_pending_age_seconds"] // 60 == 123  # 2h 3m
    assert command_labels(path) == {"welcome_mails status"}


def test_a_check_is_a_series_of_its_own(tmp_path):
    bulk_users(1)
    path = tmp_path / "status.prom"
    assert status("--check", "-v", "0", "--metrics-file", str(path))[2] == 0
    assert command_labels(path) == {"welcome_mails status --check"}
    assert metrics(path)["welcome_mail_oldest_pending_age_seconds"] == 0  # none waits
