from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core import serializers
from django.core.management import call_command
from django.db import transaction
from django.db.models.signals import post_save

from profiles import receivers
from profiles.models import Profile
from tests.helpers.commands import run_command

User = get_user_model()

pytestmark = pytest.mark.django_db


def profile_count(user) -> int:
    return Profile.objects.filter(user=user).count()


def test_create_user_creates_exactly_one_profile():
    user = User.objects.create_user("ada", "ada@example.com")
    assert profile_count(user) == 1
    assert str(user.profile) == f"Profile of user #{user.pk}"


def test_manager_create_creates_exactly_one_profile():
    user = User.objects.create(username="grace")
    assert profile_count(user) == 1


def test_get_or_create_creates_profile_once():
    user, created = User.objects.get_or_create(username="alan")
    assert created
    again, created_again = User.objects.get_or_create(username="alan")
    assert not created_again
    assert again.pk == user.pk
    assert profile_count(user) == 1


def test_createsuperuser_no_input_creates_profile(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-enough-password-123")
    call_command(
        "createsuperuser", "--no-input", username="root", email="root@example.com", verbosity=0
    )
    assert profile_count(User.objects.get(username="root")) == 1


def test_update_does_not_create_a_profile():
    user = User.objects.create_user("ada")
    Profile.objects.filter(user=user).delete()
    user.first_name = "Ada"
    user.save()
    assert profile_count(user) == 0


def test_raw_save_creates_no_profile():
    payload = '[{"model": "auth.user", "pk": 900, "fields": {"username": "raw", "password": "!"}}]'
    for obj in serializers.deserialize("json", payload):
        obj.save()  # DeserializedObject.save() is a raw=True save, as in loaddata
    assert User.objects.filter(pk=900).exists()
    assert not Profile.objects.filter(user_id=900).exists()


def test_bulk_create_creates_users_but_no_profiles():
    User.objects.bulk_create([User(username=f"bulk{i}") for i in range(5)])
    assert User.objects.filter(username__startswith="bulk").count() == 5
    assert Profile.objects.count() == 0


def test_receiver_is_idempotent_when_profile_exists():
    user = User.objects.create_user("ada")
    receivers.create_profile(sender=User, instance=user, created=True, using="default")
    assert profile_count(user) == 1


def test_receivers_are_connected_once_even_if_ready_runs_twice():
    apps.get_app_config("profiles").ready()
    uids = [key[0] for key, *_ in post_save.receivers]
    assert uids.count("profiles.receivers.create_profile") == 1
    assert uids.count("profiles.receivers.send_welcome_email") == 1
    User.objects.create_user("once")
    assert Profile.objects.count() == 1


def test_welcome_email_is_sent_once_after_commit(mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        User.objects.create_user("ada", "ada@example.com")
        assert mailoutbox == []  # not before the commit
    assert len(callbacks) == 1
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["ada@example.com"]


def test_welcome_email_not_sent_for_update(mailoutbox, django_capture_on_commit_callbacks):
    user = User.objects.create_user("ada", "ada@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        user.save()
    assert mailoutbox == []


@pytest.mark.django_db(transaction=True)
def test_welcome_email_not_sent_after_rollback(mailoutbox):
    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        User.objects.create_user("ghost", "ghost@example.com")
        raise Boom
    assert not User.objects.filter(username="ghost").exists()
    assert mailoutbox == []
    User.objects.create_user("real", "real@example.com")
    assert [m.to for m in mailoutbox] == [["real@example.com"]]


def test_demo_fixture_loads_twice_without_duplicates():
    call_command("loaddata", "demo", verbosity=0)
    call_command("loaddata", "demo", verbosity=0)
    assert User.objects.count() == 3
    assert Profile.objects.count() == 3
    assert Profile.objects.get(user__username="demo-ada").bio == "Wrote the first program."


DEMO_USERNAMES = {"demo-ada", "demo-grace", "demo-alan"}


def user_rows():
    return {
        u.pk: (u.username, u.email, u.first_name, u.last_name, u.password, u.profile.bio)
        for u in User.objects.select_related("profile")
    }


@pytest.mark.django_db(transaction=True, reset_sequences=True)  # pks from 1
def test_demo_fixture_leaves_existing_users_with_the_same_pks_and_names_alone():
    """Regression: the fixture's users had pks 1-3 (and the plain names), so loaddata
    overwrote whichever users a database already had there."""
    for name, first in [("ada", "Ada"), ("grace", "Grace"), ("alan", "Alan")]:
        user = User.objects.create_user(name, f"{name}@example.com", "pw", first_name=first)
        Profile.objects.filter(user=user).update(bio=f"{first}'s own words.")
    before = user_rows()
    assert sorted(before) == [1, 2, 3]
    for _ in range(2):  # loading twice changes nothing more than loading once
        out, err, code = run_command("loaddata", "demo")
        assert code == 0, err
        assert out.strip() == "Installed 6 object(s) from 1 fixture(s)"
        after = user_rows()
        assert {pk: after[pk] for pk in before} == before
        demo = User.objects.filter(username__in=DEMO_USERNAMES)
        assert demo.count() == 3 and User.objects.count() == 6
        assert Profile.objects.filter(user__in=demo).count() == 3
        assert Profile.objects.count() == 6
    assert Profile.objects.get(user__username="demo-grace").bio == "Built the first compiler."


def test_profile_natural_key_is_its_users():
    user = User.objects.create_user("nat")
    assert user.profile.natural_key() == user.natural_key() == ("nat",)
    assert Profile.objects.get_by_natural_key("nat") == user.profile
