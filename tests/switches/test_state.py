"""The stored switches as a process sees them: read at the first signal, then cached."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import connections, transaction
from django.utils import timezone

from profiles.models import Profile
from switches import state
from switches.models import ReceiverSwitch
from tests.switches.receivers import SYNC

User = get_user_model()

pytestmark = pytest.mark.django_db

PROFILE = "profiles.receivers.create_profile"


def store_off(name: str, **fields) -> ReceiverSwitch:
    """A switch written as another process would: this process is not told."""
    return ReceiverSwitch.objects.create(name=name, switched_off_at=timezone.now(), **fields)


class FakeClock:
    """This process's clocks, moved by hand: the monotonic one and, with ``wall=True``, the
    time of day the expiries are compared with."""

    def __init__(self, monkeypatch, *, wall: bool = False) -> None:
        self.now = 1000.0
        monkeypatch.setattr(state, "_monotonic", lambda: self.now)
        if wall:
            start = timezone.now()
            monkeypatch.setattr(
                timezone, "now", lambda: start + timedelta(seconds=self.now - 1000.0)
            )


def test_the_first_signal_of_a_process_sees_the_current_state():
    store_off(PROFILE)
    user = User.objects.create_user("ada")
    assert not Profile.objects.filter(user=user).exists()


def test_no_query_per_signal_once_read(signal, calls, django_assert_num_queries):
    signal.send(sender=None, using="default")
    with django_assert_num_queries(0):
        for _ in range(50):
            signal.send(sender=None, using="default")
    assert len(calls) == 2 * 51


def test_a_running_process_obeys_within_the_refresh_period(signal, calls, settings, monkeypatch):
    settings.RECEIVER_SWITCHES_REFRESH_SECONDS = 5
    clock = FakeClock(monkeypatch)
    signal.send(sender=None)
    store_off(SYNC)
    clock.now += 4.9
    signal.send(sender=None)
    assert calls.count("sync") == 2  # still the snapshot taken before the switch
    clock.now += 0.2
    signal.send(sender=None)
    assert calls.count("sync") == 2
    assert calls.count("async") == 3


def test_a_refresh_period_of_zero_reads_at_every_signal(signal, calls, settings):
    settings.RECEIVER_SWITCHES_REFRESH_SECONDS = 0
    signal.send(sender=None)
    store_off(SYNC)
    signal.send(sender=None)
    assert calls == ["sync", "async", "async"]


def test_an_expiring_switch_ends_on_time_despite_a_long_refresh(
    signal, calls, settings, monkeypatch
):
    settings.RECEIVER_SWITCHES_REFRESH_SECONDS = 3600
    clock = FakeClock(monkeypatch, wall=True)
    store_off(SYNC, expires_at=timezone.now() + timedelta(seconds=0.5))
    signal.send(sender=None)
    assert "sync" not in calls
    clock.now += 0.4
    signal.send(sender=None)
    assert "sync" not in calls  # not expired yet, and no hour-long snapshot either
    clock.now += 0.2
    signal.send(sender=None)
    assert "sync" in calls


def test_an_expired_switch_is_on(signal, calls):
    store_off(SYNC, expires_at=timezone.now() - timedelta(seconds=1))
    signal.send(sender=None)
    assert calls == ["sync", "async"]


@pytest.mark.django_db(transaction=True)
def test_async_receivers_read_the_state_outside_the_event_loop(signal, calls):
    store_off("tests.switches.receivers.record_async")
    try:
        # The read runs in asgiref's worker thread, on that thread's connection.
        responses = asyncio.run(signal.asend(sender=None))
    finally:
        asyncio.run(sync_to_async(connections.close_all)())
    assert sorted(r for _, r in responses if r) == ["sync"]
    assert calls == ["sync"]


class Routers:
    """Switches are read from 'replica' and not migrated on 'legacy'."""

    def db_for_read(self, model, **hints):
        return "replica" if model._meta.app_label == "switches" else None

    def allow_migrate(self, db, app_label, **hints):
        return not (db == "legacy" and app_label == "switches")


def test_the_database_is_the_signals_own_where_switches_live(settings):
    settings.DATABASE_ROUTERS = [f"{__name__}.Routers"]
    assert state.storage_alias("default") == "default"
    assert state.storage_alias("legacy") == "replica"
    assert state.storage_alias(None) == "replica"


def test_signals_read_the_database_their_using_names(signal, monkeypatch):
    read = []
    monkeypatch.setattr(state, "_read", lambda alias, now: read.append(alias) or [])
    monkeypatch.setattr(state, "storage_alias", lambda using: using or "fallback")
    signal.send(sender=None, using="default")
    signal.send(sender=None)
    assert read == ["default", "fallback"]


def test_unreadable_switches_count_as_on_and_leave_the_transaction_usable(monkeypatch, caplog):
    # A database not migrated yet: the switch table is missing.
    monkeypatch.setattr(ReceiverSwitch._meta, "db_table", "switches_not_migrated")
    with caplog.at_level(logging.WARNING, logger="switches.state"), transaction.atomic():
        user = User.objects.create_user("ada")
        assert User.objects.filter(pk=user.pk).exists()  # PostgreSQL: not aborted
    assert Profile.objects.filter(user=user).exists()
    assert "cannot read receiver switches from database 'default'" in caplog.text


def test_a_switch_written_in_a_rolled_back_transaction_is_not_kept(signal, calls, settings):
    from switches.services import receiver_switches_off

    settings.RECEIVER_SWITCHES_REFRESH_SECONDS = 3600
    with transaction.atomic():
        receiver_switches_off(names=[SYNC], reason="", by="t", until=None, using="default")
        signal.send(sender=None)
        assert calls == ["async"]
        transaction.set_rollback(True)
    signal.send(sender=None)
    assert calls == ["async", "sync", "async"]


def test_reset_drops_the_snapshots_and_the_changes_waiting_for_their_transaction(settings):
    settings.RECEIVER_SWITCHES_REFRESH_SECONDS = 3600
    state.written(using="default")  # in the test's transaction, which never commits
    state.switches_off("default")
    assert state.cached_switches("default") is None  # not cached while that transaction is open
    state.reset()
    assert frozenset(state.switches_off("default")) == frozenset()
    assert state.cached_switches("default") == {}  # cached: no change of this process waits
    store_off(PROFILE)
    state.reset()
    assert state.cached_switches("default") is None
    assert frozenset(state.switches_off("default")) == frozenset({PROFILE})
