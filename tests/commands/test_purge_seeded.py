from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

from profiles.models import Profile, WelcomeMail
from profiles.receivers import WELCOME_MAIL_RECEIVER
from seeding.services import users_seed
from tests.helpers.commands import run_command
from tests.helpers.seeding import legacy_run

User = get_user_model()


def seed(count, via, mute=()):
    users_seed(
        count=count,
        via=via,
        batch_size=50,
        seed=1,
        locales=["en_US"],
        password=None,
        using="default",
        mute=mute,
    )


@pytest.mark.django_db
def test_purge_with_no_input_deletes_only_seeded_users():
    User.objects.create_user("bob")
    seed(60, "save")
    seed(40, "bulk")
    seed(15, "bulk", mute=[WELCOME_MAIL_RECEIVER])  # suppressed records
    assert WelcomeMail.objects.count() == 1 + 60 + 15
    out, _, code = run_command("purge_seeded", no_input=True)
    assert code == 0
    assert out.strip() == (
        "Deleted 115 seeded user(s), 60 profile(s) and 75 welcome-mail record(s) "
        "from 3 seed run(s)."
    )
    assert list(User.objects.values_list("username", flat=True)) == ["bob"]
    assert Profile.objects.count() == 1
    assert list(WelcomeMail.objects.values_list("user__username", flat=True)) == ["bob"]


@pytest.mark.django_db
def test_purge_dry_run_and_json():
    seed(10, "bulk")
    seed(7, "save")
    out, _, code = run_command("purge_seeded", "--dry-run", "--format", "json")
    assert code == 0
    assert json.loads(out) == {
        "dry_run": True,
        "runs": 2,
        "users": 17,
        "profiles": 7,
        "welcome_mails": 7,
        "untracked_runs": 0,
        "runs_in_progress": 0,
    }
    assert User.objects.count() == 17
    assert WelcomeMail.objects.count() == 7
    out, _, code = run_command("purge_seeded", "--no-input", "--format", "json")
    assert (code, json.loads(out)["welcome_mails"]) == (0, 7)
    assert not WelcomeMail.objects.exists()


@pytest.mark.django_db
def test_purge_without_terminal_needs_no_input(monkeypatch):
    seed(10, "bulk")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    _, err, code = run_command("purge_seeded")
    assert code == 2 and "--no-input" in err
    assert User.objects.count() == 10


@pytest.mark.django_db
@pytest.mark.parametrize(("answer", "remaining", "code"), [("yes", 0, 0), ("no", 10, 1)])
def test_purge_asks_type_yes(monkeypatch, answer, remaining, code):
    seed(10, "bulk")
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    prompts = []
    monkeypatch.setattr("builtins.input", lambda prompt: prompts.append(prompt) or answer)
    _, _, returncode = run_command("purge_seeded")
    assert returncode == code
    assert "Type 'yes'" in prompts[0] and "10 seeded user(s)" in prompts[0]
    assert "0 welcome-mail record(s)" in prompts[0]
    assert User.objects.count() == remaining


@pytest.mark.django_db
def test_purge_says_how_many_runs_it_left_alone():
    legacy_run(9, users=5)
    seed(10, "bulk")
    out, _, code = run_command("purge_seeded", no_input=True)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == (
        "Deleted 10 seeded user(s), 0 profile(s) and 0 welcome-mail record(s) from 1 seed run(s)."
    )
    assert len(lines) == 2 and "users of 1 seed run(s) alone" in lines[1]
    out, _, _ = run_command("purge_seeded", "--dry-run", "--format", "json")
    assert json.loads(out)["untracked_runs"] == 1
