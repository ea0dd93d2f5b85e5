"""profiles_status, for every user model (run under each of tests/usermodels as well)."""

from __future__ import annotations

import json

import pytest

from profiles.services import profile_ensure
from tests.helpers.commands import run_command
from tests.helpers.users import bulk_users, create_user, users

pytestmark = [pytest.mark.any_user_model, pytest.mark.django_db]


def test_counts_users_with_and_without_a_profile():
    made = bulk_users(9)
    users().filter(pk__in=[u.pk for u in made[::3]]).delete()
    create_user(0, "signup")
    profile_ensure(user=made[1], using="default")
    out, err, code = run_command("profiles_status")
    assert code == 0, err
    assert out.strip() == "7 user(s): 2 with a profile, 5 without."
    out, _, _ = run_command("profiles_status", format="json")
    expected = {"database": "default", "users": 7, "with_profile": 2, "without_profile": 5}
    assert json.loads(out) == expected


def test_an_empty_table():
    out, _, code = run_command("profiles_status", format="json")
    assert code == 0
    assert json.loads(out)["users"] == json.loads(out)["without_profile"] == 0
