"""profiles_status, for every user model (run under each of tests/usermodels as well)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from profiles.services import profile_ensure
from tests.helpers.commands import run_command
from tests.helpers.users import bulk_users, create_user, users
from tests.profiles.welcome.states import record

pytestmark = [pytest.mark.any_user_model, pytest.mark.django_db]


def test_counts_users_with_and_without_a_profile(django_capture_on_commit_callbacks):
    made = bulk_users(9)
    users().filter(pk__in=[u.pk for u in made[::3]]).delete()
    with django_capture_on_commit_callbacks():  # its welcome mail stays pending
        create_user(0, "signup")
    profile_ensure(user=made[1], using="default")
    out, err, code = run_command("profiles_status")
    assert code == 0, err
    assert out.splitlines()[0] == "7 user(s): 2 with a profile, 5 without."
    out, _, _ = run_command("profiles_status", format="json")
    values = json.loads(out)
    welcome = values.pop("welcome_mails")
    expected = {"database": "default", "users": 7, "with_profile": 2, "without_profile": 5}
    assert values == expected
    assert (welcome["records"], welcome["pending"], welcome["without_record"]) == (1, 1, 6)


def test_shows_the_welcome_mail_counts_beside_the_profile_counts():
    a, b, _ = bulk_users(3)
    record(a, "sent")
    record(b, "pending", age=timedelta(minutes=10, seconds=5))
    out, err, code = run_command("profiles_status")
    assert code == 0, err
    assert out.splitlines() == [
        "3 user(s): 0 with a profile, 3 without.",
        "Welcome mails: 2 record(s): 1 sent, 1 pending (oldest 10m 5s), 0 sending, "
        "0 suppressed, 0 failed; 1 user(s) without one.",
    ]
    welcome = json.loads(run_command("profiles_status", format="json")[0])["welcome_mails"]
    assert welcome["oldest_pending_age_seconds"] >= 605
    assert {k: welcome[k] for k in ("sent", "pending", "sending", "suppressed", "failed")} == {
        "sent": 1,
        "pending": 1,
        "sending": 0,
        "suppressed": 0,
        "failed": 0,
    }


def test_an_empty_table():
    out, _, code = run_command("profiles_status", format="json")
    assert code == 0
    assert json.loads(out)["users"] == json.loads(out)["without_profile"] == 0
    assert json.loads(out)["welcome_mails"]["records"] == 0


def test_silent_at_verbosity_0():
    assert run_command("profiles_status", verbosity=0) == ("", "", 0)
