"""@switchable and RECEIVER_SWITCHES_EXTRA: a wrapper that obeys the switch, and Django's
guarantees for a switched-on receiver kept."""

from __future__ import annotations

import asyncio
import inspect
import logging

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db.models.signals import post_save
from django.dispatch import Signal

from profiles.models import Profile
from switches.introspection import connected_receivers, dotted_name
from switches.muting import muted
from switches.wrapping import switchable_names
from tests.switches import receivers
from tests.switches.receivers import SYNC, connection_of

User = get_user_model()


def test_switchable_keeps_name_signature_and_kind():
    assert receivers.record_sync.__qualname__ == "record_sync"
    assert "sender" in inspect.signature(receivers.record_sync).parameters
    assert inspect.iscoroutinefunction(receivers.record_async)
    assert not inspect.iscoroutinefunction(receivers.record_sync)
    assert dotted_name(receivers.record_async) == "tests.switches.receivers.record_async"
    assert SYNC in switchable_names()


# -- Django's guarantees, for switched-on receivers --


def test_dispatch_uid_still_connects_once_and_disconnects(calls, primed):
    signal = Signal()
    signal.connect(receivers.record_sync, dispatch_uid="uid")
    signal.connect(receivers.record_sync, dispatch_uid="uid")
    signal.send(sender=None)
    assert calls == ["sync"]
    assert signal.disconnect(dispatch_uid="uid")
    assert signal.send(sender=None) == []


def test_sender_filtering_is_unchanged(calls, primed):
    signal = Signal()
    signal.connect(receivers.record_sync, sender=User)
    signal.send(sender=Profile)
    assert calls == []
    assert [(r, v) for r, v in signal.send(sender=User)] == [(receivers.record_sync, "sync")]
    assert signal.has_listeners(User) and not signal.has_listeners(Profile)


def test_send_robust_still_catches_and_logs_errors(calls, primed, caplog):
    signal = Signal()
    signal.connect(receivers.explode)
    signal.connect(receivers.record_sync)
    with caplog.at_level(logging.ERROR, logger="django.dispatch"):
        responses = signal.send_robust(sender=None)
    assert isinstance(responses[0][1], RuntimeError)
    assert responses[1][1] == "sync"
    assert calls == ["explode", "sync"]
    assert "Error calling explode" in caplog.text
    with muted("tests.switches.receivers.explode"):
        assert [v for _, v in signal.send_robust(sender=None)] == [None, "sync"]


def test_async_receivers_run_through_send_and_asend(signal, calls, primed):
    assert [v for _, v in signal.send(sender=None)] == ["sync", "async"]
    assert [v for _, v in asyncio.run(signal.asend(sender=None))] == ["sync", "async"]
    assert sorted(calls) == ["async", "async", "sync", "sync"]


# -- receivers of other apps, made switchable by the RECEIVER_SWITCHES_EXTRA setting --


@pytest.fixture
def foreign_receivers(calls):
    """Two plain receivers, as another app would connect them (weakly, no dispatch_uid)."""
    post_save.connect(receivers.record_plain, sender=Profile)
    post_save.connect(receivers.record_sync, sender=Profile)
    yield
    for receiver in (receivers.record_plain, receivers.record_sync):
        post_save.disconnect(receiver, sender=Profile)


@pytest.mark.django_db
def test_a_receiver_named_in_the_setting_becomes_switchable_in_place(foreign_receivers, settings):
    plain = "tests.switches.receivers.record_plain"
    settings.RECEIVER_SWITCHES_EXTRA = [plain]
    before = [c.name for c in connected_receivers() if c.signal == "post_save"]
    apps.get_app_config("switches").ready()
    apps.get_app_config("switches").ready()  # ready() may run twice: wraps once
    after = [c for c in connected_receivers() if c.signal == "post_save"]
    assert [c.name for c in after] == before  # same place: same call order
    assert connection_of(plain, "post_save").switchable
    assert connection_of(plain, "post_save").dispatch_uid is None
    user = User.objects.create_user("ada")
    profile = Profile.objects.get(user=user)
    with muted(plain):
        profile.save()
    assert receivers.calls == ["sync"]
    profile.save()
    assert receivers.calls == ["sync", "plain", "sync"]
    # Disconnecting the original still works: the lookup key was kept.
    assert post_save.disconnect(receivers.record_plain, sender=Profile)
    assert plain not in {c.name for c in connected_receivers()}
