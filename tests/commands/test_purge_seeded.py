from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models.signals import post_delete

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
        "cancelled": False,
        "dry_run": True,
        "runs": 2,
        "users": 17,
        "profiles": 7,
        "welcome_mails": 7,
        "untracked_runs": 0,
        "runs_in_progress": 0,
        "object_by_object": [],
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
@pytest.mark.parametrize("answer", ["yes", "no", "", "y", "YES", "yes please"])
def test_purge_asks_type_yes_and_anything_else_cancels_with_exit_0(monkeypatch, answer):
    seed(10, "bulk")
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    prompts = []
    monkeypatch.setattr("builtins.input", lambda prompt: prompts.append(prompt) or answer)
    out, err, returncode = run_command("purge_seeded")
    assert (returncode, err) == (0, "")  # as Django's flush: a cancel is no failure
    assert "Type 'yes'" in prompts[0] and "10 seeded user(s)" in prompts[0]
    assert "0 welcome-mail record(s)" in prompts[0]
    if answer == "yes":
        assert out.startswith("Deleted 10 seeded user(s)")
        assert not User.objects.exists()
    else:
        assert out == "Purge cancelled; nothing was deleted.\n"
        assert User.objects.count() == 10


@pytest.mark.django_db
def test_a_cancelled_purge_says_so_at_every_verbosity_and_in_json(monkeypatch):
    seed(5, "bulk")
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    out, _, code = run_command("purge_seeded", verbosity=0)
    assert (out, code) == ("Purge cancelled; nothing was deleted.\n", 0)
    out, _, code = run_command("purge_seeded", "--format", "json")
    assert code == 0
    assert json.loads(out) == {
        "cancelled": True,
        "dry_run": False,
        "runs": 0,
        "users": 0,
        "profiles": 0,
        "welcome_mails": 0,
    }
    assert User.objects.count() == 5


@pytest.mark.django_db
@pytest.mark.parametrize("spelling", ["--no-input", "--noinput"])
def test_no_input_takes_djangos_both_spellings(spelling):
    seed(5, "bulk")
    _, err, code = run_command("purge_seeded", spelling)
    assert code == 0, err
    assert not User.objects.exists()


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("stream", "verbosity", "shown"),
    [(Terminal, 1, True), (Terminal, 2, True), (Terminal, 0, False), (io.StringIO, 1, False)],
)
def test_progress_bar_only_on_a_terminal_at_verbosity_1_and_up(stream, verbosity, shown):
    seed(120, "bulk")
    out, err = io.StringIO(), stream()
    call_command("purge_seeded", "--no-input", stdout=out, stderr=err, verbosity=verbosity)
    assert ("Purging seeded users" in err.getvalue()) is shown
    assert not User.objects.exists()
    if shown:
        assert "100%" in err.getvalue()


@pytest.mark.django_db
def test_the_summary_says_when_a_delete_receiver_makes_rows_go_object_by_object():
    seed(20, "save")
    seen = []

    def audit(sender, instance, **kwargs):
        seen.append(instance.user_id)

    post_delete.connect(audit, sender=Profile, dispatch_uid="test-purge-audit")
    try:
        out, err, code = run_command("purge_seeded", "--no-input")
        dry = run_command("purge_seeded", "--dry-run", "--format", "json")[0]
    finally:
        post_delete.disconnect(sender=Profile, dispatch_uid="test-purge-audit")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == (
        "Deleted 20 seeded user(s), 20 profile(s) and 20 welcome-mail record(s) from 1 seed run(s)."
    )
    assert lines[1] == (
        "Deleted some rows object by object, loading them first as Django's delete does, "
        "because of: pre_delete/post_delete receivers on profiles.Profile. Every other table "
        "goes with one DELETE per batch."
    )
    assert len(seen) == 20 and not User.objects.exists()
    assert json.loads(dry)["object_by_object"] == [
        "pre_delete/post_delete receivers on profiles.Profile"
    ]


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
