from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

from profiles.models import Profile
from seeding.services import users_seed
from tests.helpers.commands import run_command
from tests.helpers.seeding import legacy_run

User = get_user_model()


def seed(count, via):
    users_seed(
        count=count,
        via=via,
        batch_size=50,
        seed=1,
        locales=["en_US"],
        password=None,
        using="default",
    )


@pytest.mark.django_db
def test_purge_with_no_input_deletes_only_seeded_users():
    User.objects.create_user("bob")
    seed(60, "save")
    seed(40, "bulk")
    out, _, code = run_command("purge_seeded", no_input=True)
    assert code == 0
    assert out.strip() == "Deleted 100 seeded user(s) and 60 profile(s) from 2 seed run(s)."
    assert list(User.objects.values_list("username", flat=True)) == ["bob"]
    assert Profile.objects.count() == 1


@pytest.mark.django_db
def test_purge_dry_run_and_json():
    seed(10, "bulk")
    out, _, code = run_command("purge_seeded", "--dry-run", "--format", "json")
    assert code == 0
    assert json.loads(out) == {
        "dry_run": True,
        "runs": 1,
        "users": 10,
        "profiles": 0,
        "untracked_runs": 0,
        "runs_in_progress": 0,
    }
    assert User.objects.count() == 10


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
    assert User.objects.count() == remaining


@pytest.mark.django_db
def test_purge_says_how_many_runs_it_left_alone():
    legacy_run(9, users=5)
    seed(10, "bulk")
    out, _, code = run_command("purge_seeded", no_input=True)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "Deleted 10 seeded user(s) and 0 profile(s) from 1 seed run(s)."
    assert len(lines) == 2 and "users of 1 seed run(s) alone" in lines[1]
    out, _, _ = run_command("purge_seeded", "--dry-run", "--format", "json")
    assert json.loads(out)["untracked_runs"] == 1
