from __future__ import annotations

from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core import serializers
from django.core.management import call_command
from django.db import DatabaseError, transaction
from django.db.models.signals import post_save
from django.utils import timezone

from profiles import receivers
from profiles.models import Profile, WelcomeMail
from profiles.welcome.records import record_new_user
from switches.muting import muted
from switches.services import receiver_switches_off, receiver_switches_on
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


# -- the welcome mail: one record per user, written in the saving transaction --


WELCOME = receivers.WELCOME_MAIL_RECEIVER


def welcome(user) -> WelcomeMail:
    return WelcomeMail.objects.get(user=user)


def test_the_welcome_receiver_is_known_by_its_dotted_name():
    assert WELCOME == "profiles.receivers.send_welcome_email"


def test_a_saved_user_gets_one_pending_record_and_delivery_only_after_commit(
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks() as callbacks:  # not run: delivery is tested apart
        user = User.objects.create_user("ada", "ada@example.com")
        record = welcome(user)  # already there, in the saving transaction
    assert (record.status, record.reason, record.attempts) == ("pending", "", 0)
    assert record.due_at == record.created_at is not None
    assert (record.sent_at, record.message_id) == (None, "")
    assert len(callbacks) == 1  # the delivery, enqueued for after the commit


def test_exactly_one_record_per_user_however_often_it_is_saved():
    user = User.objects.create_user("ada", "ada@example.com")
    user.first_name = "Ada"
    user.save()
    User.objects.get_or_create(username="ada")
    _, created = User.objects.get_or_create(username="alan")
    assert created
    assert WelcomeMail.objects.filter(user=user).count() == 1
    assert WelcomeMail.objects.count() == User.objects.count() == 2


def test_an_update_writes_no_record():
    user = User.objects.create_user("ada")
    WelcomeMail.objects.filter(user=user).delete()
    user.save()
    assert not WelcomeMail.objects.filter(user=user).exists()


@pytest.mark.django_db(transaction=True)
def test_the_record_rolls_back_with_the_user():
    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        User.objects.create_user("ghost", "ghost@example.com")
        assert WelcomeMail.objects.filter(user__username="ghost").exists()
        raise Boom
    with transaction.atomic():
        real = User.objects.create_user("real", "real@example.com")
        with pytest.raises(Boom), transaction.atomic():  # a savepoint rolled back
            User.objects.create_user("inner", "inner@example.com")
            raise Boom
    assert list(User.objects.values_list("username", flat=True)) == ["real"]
    assert list(WelcomeMail.objects.values_list("user_id", flat=True)) == [real.pk]


@pytest.mark.django_db(transaction=True)
def test_a_user_whose_record_cannot_be_written_is_not_created(monkeypatch):
    """One transaction: when the record's insert fails, the user rolls back too."""

    def fail(**kwargs):
        raise DatabaseError("record insert failed")

    monkeypatch.setattr(receivers, "record_new_user", fail)
    with pytest.raises(DatabaseError), transaction.atomic():
        User.objects.create_user("ada")
    assert not User.objects.exists()


def test_a_raw_save_writes_no_record(django_capture_on_commit_callbacks):
    payload = '[{"model": "auth.user", "pk": 900, "fields": {"username": "raw", "password": "!"}}]'
    with django_capture_on_commit_callbacks() as callbacks:
        for obj in serializers.deserialize("json", payload):
            obj.save()  # loaddata's raw=True save: welcome_mails sync makes the record
    assert User.objects.filter(pk=900).exists()
    assert not WelcomeMail.objects.filter(user_id=900).exists()
    assert callbacks == []


def test_bulk_create_writes_no_records():
    User.objects.bulk_create([User(username=f"bulk{i}") for i in range(3)])
    assert not WelcomeMail.objects.exists()


def test_switched_off_the_record_is_suppressed_with_the_switchs_reason_and_by(
    django_capture_on_commit_callbacks,
):
    receiver_switches_off(
        names=[WELCOME], reason="CRM import", by="alice", until=None, using="default"
    )
    with django_capture_on_commit_callbacks() as callbacks:
        user = User.objects.create_user("ada", "ada@example.com")
    record = welcome(user)
    assert record.status == "suppressed"
    assert record.reason == f"{WELCOME} switched off by alice: CRM import"
    assert Profile.objects.filter(user=user).exists()  # the other receiver is still on
    assert callbacks == []  # nothing to deliver
    receiver_switches_on(names=[WELCOME], using="default")
    later = User.objects.create_user("bob", "bob@example.com")
    assert welcome(later).status == "pending"
    assert welcome(user).status == "suppressed"  # switching back on changes nothing made


def test_a_switch_with_an_expiry_says_until_when():
    until = timezone.now() + timedelta(hours=2)
    receiver_switches_off(names=[WELCOME], reason="", by="ann", until=until, using="default")
    record = welcome(User.objects.create_user("ada"))
    assert record.reason == (
        f"{WELCOME} switched off by ann until {until.isoformat(timespec='seconds')}"
    )


def test_muted_the_record_is_suppressed_saying_what_muted_it(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        with muted(WELCOME, reason="seed_users --mute (seed run 12)"):
            user = User.objects.create_user("ada", "ada@example.com")
        with muted(WELCOME):
            plain = User.objects.create_user("bob")
    assert callbacks == []  # nothing to deliver
    assert (welcome(user).status, welcome(user).reason) == (
        "suppressed",
        f"{WELCOME} muted: seed_users --mute (seed run 12)",
    )
    assert (welcome(plain).status, welcome(plain).reason) == ("suppressed", f"{WELCOME} muted")
    assert Profile.objects.filter(user__in=[user, plain]).count() == 2


def test_muting_the_profile_receiver_leaves_the_welcome_mail_alone():
    with muted("profiles.receivers.create_profile"):
        user = User.objects.create_user("ada")
    assert welcome(user).status == "pending"
    assert not Profile.objects.filter(user=user).exists()


def test_a_raw_save_while_muted_writes_no_record():
    payload = '[{"model": "auth.user", "pk": 901, "fields": {"username": "raw", "password": "!"}}]'
    with muted(WELCOME):
        for obj in serializers.deserialize("json", payload):
            obj.save()
    assert not WelcomeMail.objects.exists()


def test_a_user_who_joined_before_the_rollout_cutoff_is_suppressed_and_not_delivered(
    settings, django_capture_on_commit_callbacks
):
    settings.WELCOME_MAIL_SINCE = timezone.now() + timedelta(days=1)
    with django_capture_on_commit_callbacks() as callbacks:
        user = User.objects.create_user("ada", "ada@example.com")
    assert welcome(user).status == "suppressed"
    assert "WELCOME_MAIL_SINCE" in welcome(user).reason
    assert callbacks == []


def test_a_user_without_a_join_date_counts_as_before_the_cutoff_as_for_sync(settings):
    settings.WELCOME_MAIL_SINCE = timezone.now() - timedelta(days=1)
    User.objects.bulk_create([User(username="undated")])
    user = User.objects.get(username="undated")  # MySQL's bulk_create sets no pk
    user.date_joined = None  # a model whose joined field is nullable
    assert record_new_user(user=user, using="default") == "suppressed"
    assert "WELCOME_MAIL_SINCE" in welcome(user).reason


def test_a_record_written_first_by_sync_is_kept_and_the_receiver_does_not_fail():
    # In autocommit the user is committed before post_save runs: a sync may have
    # given it a record by the time the receiver writes its own.
    User.objects.bulk_create([User(username="raced")])
    user = User.objects.get(username="raced")
    assert record_new_user(user=user, using="default") == "pending"
    assert record_new_user(user=user, using="default", suppressed_reason="off") is None
    assert (WelcomeMail.objects.filter(user=user).count(), welcome(user).status) == (1, "pending")


def test_demo_fixture_loads_twice_without_duplicates():
    call_command("loaddata", "demo", verbosity=0)
    call_command("loaddata", "demo", verbosity=0)
    assert User.objects.count() == 3
    assert Profile.objects.count() == 3
    assert Profile.objects.get(user__username="demo-ada").bio == "Wrote the first program."
    assert not WelcomeMail.objects.exists()  # raw saves: welcome_mails sync makes them


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
