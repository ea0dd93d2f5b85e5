"""Writes: switching receivers off and on in the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dbtools.errors import UsageError
from profiles.models import Profile
from switches import state
from switches.models import ReceiverSwitch
from switches.names import ReceiverNameError
from switches.services import (
    MAX_DURATION,
    receiver_switches_all_on,
    receiver_switches_off,
    receiver_switches_on,
)

User = get_user_model()

pytestmark = pytest.mark.django_db

PROFILE = "profiles.receivers.create_profile"
WELCOME = "profiles.receivers.send_welcome_email"


def off(*names: str, reason: str = "", by: str = "ops", until=None):
    return receiver_switches_off(names=names, reason=reason, by=by, until=until, using="default")


def test_off_stores_one_row_per_receiver_with_when_who_why():
    until = timezone.now() + timedelta(hours=2)
    [change] = off(WELCOME, reason="bulk import", by="ann", until=until)
    assert (change.name, change.was_off, change.is_off, change.changed) == (
        WELCOME,
        False,
        True,
        True,
    )
    switch = ReceiverSwitch.objects.get()
    assert (switch.name, switch.reason, switch.switched_off_by) == (WELCOME, "bulk import", "ann")
    assert switch.expires_at == change.expires_at == until
    assert switch.switched_off_at <= timezone.now()


def test_off_twice_is_no_change_keeps_since_and_takes_the_new_details():
    [first] = off(WELCOME, reason="first")
    [again] = off(WELCOME, WELCOME, reason="second", by="bob")
    assert again.was_off and again.is_off and not again.changed
    assert again.switched_off_at == first.switched_off_at
    switch = ReceiverSwitch.objects.get()
    assert (switch.reason, switch.switched_off_by) == ("second", "bob")


def test_off_after_expiry_is_a_change_with_a_new_since():
    old = timezone.now() - timedelta(days=1)
    ReceiverSwitch.objects.create(
        name=WELCOME, switched_off_at=old, expires_at=old + timedelta(hours=1)
    )
    [change] = off(WELCOME)
    assert change.changed
    assert change.switched_off_at is not None and change.switched_off_at > old
    assert ReceiverSwitch.objects.get().expires_at is None


def statements(queries: CaptureQueriesContext) -> list[str]:
    """The first word of each statement sent, savepoints left out."""
    words = [query["sql"].split()[0].upper() for query in queries]
    return [word for word in words if word not in {"SAVEPOINT", "RELEASE", "ROLLBACK"}]


def test_each_service_reads_the_rows_it_changes_once_under_their_lock():
    off(WELCOME)
    past = timezone.now() - timedelta(hours=1)
    ReceiverSwitch.objects.create(name=PROFILE, switched_off_at=past, expires_at=past)
    with CaptureQueriesContext(connection) as again:
        [change] = off(WELCOME)
    assert not change.changed
    # The locked read (with whether it is active), then update_or_create's own.
    assert statements(again) == ["SELECT", "SELECT", "UPDATE"]
    with CaptureQueriesContext(connection) as on:
        [change] = receiver_switches_on(names=[PROFILE], using="default")
    assert not change.changed  # it had expired
    # The stored names (for a receiver that is gone), the locked read, the delete.
    assert statements(on) == ["SELECT", "SELECT", "DELETE"]
    with CaptureQueriesContext(connection) as all_on:
        assert [c.name for c in receiver_switches_all_on(using="default")] == [WELCOME]
    assert statements(all_on) == ["SELECT", "DELETE"]


def test_on_removes_the_row_and_on_again_is_no_change():
    off(WELCOME, PROFILE)
    [change] = receiver_switches_on(names=[WELCOME], using="default")
    assert change.was_off and not change.is_off and change.changed
    assert list(ReceiverSwitch.objects.values_list("name", flat=True)) == [PROFILE]
    [again] = receiver_switches_on(names=[WELCOME], using="default")
    assert not again.changed


def test_all_on_reports_only_the_receivers_that_were_off():
    off(WELCOME)
    past = timezone.now() - timedelta(hours=1)
    ReceiverSwitch.objects.create(name=PROFILE, switched_off_at=past, expires_at=past)
    changes = receiver_switches_all_on(using="default")
    assert [(c.name, c.changed) for c in changes] == [(WELCOME, True)]
    assert not ReceiverSwitch.objects.exists()
    assert receiver_switches_all_on(using="default") == []


def test_an_unknown_name_changes_nothing():
    with pytest.raises(ReceiverNameError) as excinfo:
        off(WELCOME, "profiles.receivers.create_profiles")
    assert excinfo.value.unknown["profiles.receivers.create_profiles"][0] == PROFILE
    assert not ReceiverSwitch.objects.exists()


def test_a_receiver_that_is_not_switchable_is_refused():
    name = "django.contrib.auth.models.update_last_login"
    with pytest.raises(ReceiverNameError, match="RECEIVER_SWITCHES_EXTRA") as excinfo:
        off(name)
    assert excinfo.value.not_switchable == [name]


def test_on_accepts_the_stored_switch_of_a_receiver_that_is_gone():
    ReceiverSwitch.objects.create(name="gone.receivers.old", switched_off_at=timezone.now())
    [change] = receiver_switches_on(names=["gone.receivers.old"], using="default")
    assert change.changed
    assert not ReceiverSwitch.objects.exists()
    with pytest.raises(ReceiverNameError):
        receiver_switches_on(names=["gone.receivers.old"], using="default")


def test_an_expiry_in_the_past_or_a_long_by_is_refused():
    with pytest.raises(ValueError, match="not in the future"):
        off(WELCOME, until=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ValueError, match="longer than 150"):
        off(WELCOME, by="x" * 151)
    assert not ReceiverSwitch.objects.exists()


def test_the_service_refuses_an_expiry_beyond_the_longest_duration():
    until = timezone.now() + MAX_DURATION + timedelta(minutes=1)
    with pytest.raises(ValueError, match="more than 36500 days away"):
        receiver_switches_off(names=[WELCOME], reason="", by="", until=until, using="default")
    assert not ReceiverSwitch.objects.exists()


def test_refused_arguments_are_usage_errors_the_commands_exit_2_for():
    with pytest.raises(UsageError):
        off(WELCOME, by="x" * 151)
    with pytest.raises(UsageError):
        off("profiles.receivers.nope")


def test_this_process_obeys_its_own_change_at_once(settings):
    settings.RECEIVER_SWITCHES_REFRESH_SECONDS = 3600
    User.objects.create_user("before")  # the snapshot is now "all on", for an hour
    off(PROFILE)
    assert not Profile.objects.filter(user=User.objects.create_user("during")).exists()
    receiver_switches_on(names=[PROFILE], using="default")
    assert Profile.objects.filter(user=User.objects.create_user("after")).exists()


@pytest.mark.django_db(transaction=True)
def test_after_commit_reads_are_cached_again(signal, settings, django_assert_num_queries):
    settings.RECEIVER_SWITCHES_REFRESH_SECONDS = 3600
    off(PROFILE)
    with transaction.atomic():
        state.switches_off("default")
        # autocommit: nothing left pending, so reads are cached even inside a transaction
        assert set(state.cached_switches("default") or ()) == {PROFILE}
    signal.send(sender=None, using="default")
    with django_assert_num_queries(0):
        signal.send(sender=None, using="default")
