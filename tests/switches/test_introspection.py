"""Which receivers are connected, with their signal, sender and dispatch_uid, read from Django."""

from __future__ import annotations

import django
import pytest
from django.core.signals import request_started
from django.db.models.signals import post_save, pre_save

from profiles.models import Profile
from switches.introspection import connected_receivers
from tests.switches import receivers
from tests.switches.receivers import SYNC, connection_of

PROJECT_PACKAGES = ("cliproject.", "commands.", "profiles.", "seeding.", "switches.")


def test_every_receiver_of_this_project_is_switchable():
    ours = [c for c in connected_receivers() if c.name.startswith(PROJECT_PACKAGES)]
    assert {c.name for c in ours} >= {
        "profiles.receivers.create_profile",
        "profiles.receivers.send_welcome_email",
    }
    assert [c.name for c in ours if not c.switchable] == []


def test_the_profile_receivers_are_listed_with_signal_sender_and_uid():
    welcome = connection_of("profiles.receivers.send_welcome_email", "post_save")
    assert (welcome.sender, welcome.dispatch_uid, welcome.is_async, welcome.switchable) == (
        "auth.User",
        "profiles.receivers.send_welcome_email",
        False,
        True,
    )


def test_receivers_of_other_apps_are_listed_as_not_switchable():
    last_login = connection_of("django.contrib.auth.models.update_last_login", "user_logged_in")
    assert not last_login.switchable
    assert last_login.sender is None


class NotAModel:
    pass


@pytest.fixture
def odd_senders():
    post_save.connect(receivers.record_plain, sender="profiles.Profile")  # lazy "app.Model"
    pre_save.connect(receivers.record_plain)  # no sender
    request_started.connect(receivers.record_plain, sender=NotAModel)  # not a model
    request_started.connect(receivers.record_sync, sender="a string")  # not weak-referenceable
    yield
    post_save.disconnect(receivers.record_plain, sender=Profile)
    pre_save.disconnect(receivers.record_plain)
    request_started.disconnect(receivers.record_plain, sender=NotAModel)
    request_started.disconnect(receivers.record_sync, sender="a string")


def test_listing_copes_with_any_kind_of_sender(odd_senders):
    plain = "tests.switches.receivers.record_plain"
    assert connection_of(plain, "post_save").sender == "profiles.Profile"
    assert connection_of(plain, "pre_save").sender is None
    not_a_model = connection_of(plain, "request_started").sender
    if django.VERSION >= (6, 0):  # Django 6 keeps a weak reference to the sender
        assert not_a_model == f"{__name__}.NotAModel"
    else:  # Django 5.2 keeps only its id
        assert not_a_model is not None and not_a_model.startswith("<unresolved sender")
    string_sender = connection_of(SYNC, "request_started")
    assert string_sender.sender is not None and string_sender.sender.startswith("<unresolved")


def test_async_receivers_are_listed_as_async_and_switchable(calls):
    post_save.connect(receivers.record_async, sender=Profile)
    try:
        listed = connection_of("tests.switches.receivers.record_async", "post_save")
    finally:
        post_save.disconnect(receivers.record_async, sender=Profile)
    assert listed.is_async and listed.switchable and listed.sender == "profiles.Profile"
