"""@switchable(when_off=handler): what runs instead of a receiver that is off or muted,
and the switch it is told about (which one, why, by whom)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.dispatch import Signal
from django.utils import timezone

from switches import state
from switches.models import ReceiverSwitch
from switches.muting import muted
from switches.state import SwitchInfo, muted_reasons, muted_switch
from switches.wrapping import switchable
from tests.switches import receivers
from tests.switches.receivers import (
    HANDLED_ASYNC,
    HANDLED_ASYNC_SYNC_HANDLER,
    HANDLED_SYNC,
    SYNC,
)


@pytest.fixture
def handled(calls):
    """A fresh signal with the receivers that have handlers: sync, async, async+sync handler."""
    sig = Signal()
    sig.connect(receivers.handled_sync)
    sig.connect(receivers.handled_async)
    sig.connect(receivers.handled_async_sync_handler)
    return sig


def store_off(name: str, **fields) -> ReceiverSwitch:
    return ReceiverSwitch.objects.create(name=name, switched_off_at=timezone.now(), **fields)


def skipped_names() -> list[tuple[str, str]]:
    return [(where, switch.name) for where, switch, _ in receivers.skipped]


@pytest.mark.django_db
def test_switched_on_the_receivers_run_and_no_handler(handled, calls):
    responses = [r for _, r in handled.send(sender=None, using="default")]
    assert responses == ["ran", "ran async", "ran async"]
    assert calls == ["handled sync", "handled async", "handled async, sync handler"]
    assert receivers.skipped == []


@pytest.mark.django_db
def test_switched_off_the_handler_runs_with_the_stored_switch_and_the_signals_arguments(
    handled, calls
):
    until = timezone.now() + timedelta(hours=1)
    store_off(HANDLED_SYNC, reason="CRM import", switched_off_by="alice", expires_at=until)
    store_off(HANDLED_ASYNC, reason="outage", switched_off_by="bob")
    store_off(HANDLED_ASYNC_SYNC_HANDLER)
    responses = [r for _, r in handled.send(sender="the sender", using="default", extra=1)]
    assert responses == ["skipped", "skipped async", "skipped"]
    assert calls == []
    assert skipped_names() == [
        ("sync handler", HANDLED_SYNC),
        ("async handler", HANDLED_ASYNC),
        ("sync handler", HANDLED_ASYNC_SYNC_HANDLER),
    ]
    first = receivers.skipped[0][1]
    assert first == SwitchInfo(
        name=HANDLED_SYNC, muted=False, reason="CRM import", by="alice", expires_at=until
    )
    assert receivers.skipped[1][1].reason == "outage" and receivers.skipped[1][1].by == "bob"
    for _, _, arguments in receivers.skipped:
        assert arguments == {
            "signal": handled,
            "sender": "the sender",
            "using": "default",
            "extra": 1,
        }


@pytest.mark.django_db(transaction=True)
def test_async_receivers_handlers_run_through_asend(handled, calls):
    store_off(HANDLED_ASYNC, reason="outage")
    store_off(HANDLED_ASYNC_SYNC_HANDLER, reason="outage")
    # No fresh snapshot: the read runs outside the event loop (asgiref's thread).
    responses = asyncio.run(handled.asend(sender=None, using="default"))
    assert [r for _, r in responses] == ["ran", "skipped async", "skipped"]
    assert calls == ["handled sync"]
    assert [s.reason for _, s, _ in receivers.skipped] == ["outage", "outage"]


def test_muted_the_handler_is_told_what_muted_it(handled, calls, primed):
    with muted(HANDLED_SYNC, HANDLED_ASYNC, reason="seed run 12"):
        responses = [r for _, r in handled.send(sender=None)]
    assert responses == ["skipped", "skipped async", "ran async"]
    assert calls == ["handled async, sync handler"]
    assert [s for _, s, _ in receivers.skipped] == [
        SwitchInfo(name=HANDLED_SYNC, muted=True, reason="seed run 12"),
        SwitchInfo(name=HANDLED_ASYNC, muted=True, reason="seed run 12"),
    ]


def test_muted_in_an_asyncio_task_the_handlers_run_there(handled, calls, primed):
    async def muted_task() -> list[object]:
        with muted(HANDLED_ASYNC, HANDLED_ASYNC_SYNC_HANDLER, reason="task"):
            return [r for _, r in await handled.asend(sender=None)]

    assert asyncio.run(muted_task()) == ["ran", "skipped async", "skipped"]
    assert [s.reason for _, s, _ in receivers.skipped] == ["task", "task"]


def test_an_off_receiver_with_a_handler_costs_no_query_per_signal(
    handled, calls, settings, db, django_assert_num_queries
):
    settings.RECEIVER_SWITCHES_REFRESH_SECONDS = 3600
    store_off(HANDLED_SYNC, reason="r")
    handled.send(sender=None, using="default")
    with django_assert_num_queries(0):
        for _ in range(20):
            handled.send(sender=None, using="default")
    assert len(receivers.skipped) == 21


def test_a_sync_receiver_needs_a_sync_handler():
    async def handler(switch, *args, **kwargs):
        return None

    def receiver(sender, **kwargs):
        return None

    with pytest.raises(TypeError, match="sync when_off handler"):
        switchable(when_off=handler)(receiver)


def test_without_a_handler_an_off_receiver_still_answers_none(signal, calls, primed):
    with muted(SYNC, reason="ignored"):
        assert [r for _, r in signal.send(sender=None)] == [None, "async"]


# -- what the handler is told --


def test_describe_says_which_switch_by_whom_until_when_and_why():
    until = timezone.now().replace(microsecond=0) + timedelta(hours=2)
    name = "profiles.receivers.send_welcome_email"
    assert (
        SwitchInfo(name=name, muted=False, reason="CRM import", by="alice").describe()
        == f"{name} switched off by alice: CRM import"
    )
    assert SwitchInfo(name=name, muted=False).describe() == f"{name} switched off"
    assert (
        SwitchInfo(name=name, muted=False, by="ann", expires_at=until).describe()
        == f"{name} switched off by ann until {until.isoformat()}"
    )
    assert (
        SwitchInfo(name=name, muted=True, reason="seed_users --mute (seed run 12)").describe()
        == f"{name} muted: seed_users --mute (seed run 12)"
    )
    assert SwitchInfo(name=name, muted=True).describe() == f"{name} muted"


@pytest.mark.django_db
def test_the_snapshot_keeps_each_off_switchs_reason_and_by(settings):
    settings.RECEIVER_SWITCHES_REFRESH_SECONDS = 3600
    store_off(SYNC, reason="why", switched_off_by="who")
    store_off(HANDLED_SYNC, expires_at=timezone.now() - timedelta(seconds=1))  # expired: on
    assert state.cached_switches("default") is None
    switches = state.switches_off("default")
    assert dict(switches) == {SYNC: SwitchInfo(name=SYNC, muted=False, reason="why", by="who")}
    assert state.cached_switches("default") == switches
    assert frozenset(state.switches_off("default")) == frozenset({SYNC})  # the names, as before


def test_nested_blocks_keep_the_reason_of_the_block_that_gave_one():
    assert muted_switch(SYNC) is None
    with muted(SYNC, reason="outer"):
        with muted(SYNC):
            assert muted_switch(SYNC) == SwitchInfo(name=SYNC, muted=True, reason="outer")
        with muted(SYNC, HANDLED_SYNC, reason="inner"):
            assert muted_switch(SYNC).reason == "inner"
            assert muted_switch(HANDLED_SYNC).reason == "inner"
        assert muted_switch(SYNC).reason == "outer"
        assert muted_switch(HANDLED_SYNC) is None
    assert muted_switch(SYNC) is None
    assert dict(muted_reasons.get()) == {}


def test_the_decorator_passes_its_reason_on() -> None:
    @muted(SYNC, reason="decorated")
    def inner() -> SwitchInfo | None:
        return muted_switch(SYNC)

    assert inner() == SwitchInfo(name=SYNC, muted=True, reason="decorated")
    assert muted_switch(SYNC) is None
