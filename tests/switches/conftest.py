from __future__ import annotations

import pytest

from switches import state


@pytest.fixture
def calls():
    from tests.switches import receivers

    receivers.calls.clear()
    receivers.skipped.clear()
    yield receivers.calls
    receivers.calls.clear()
    receivers.skipped.clear()


@pytest.fixture
def signal(calls):
    """A fresh signal with the switchable test receivers, sync then async."""
    from django.dispatch import Signal

    from tests.switches import receivers

    sig = Signal()
    sig.connect(receivers.record_sync)
    sig.connect(receivers.record_async)
    return sig


@pytest.fixture
def primed(settings, db):
    """Stored switches read once, then not again for an hour: no database in threads."""
    settings.RECEIVER_SWITCHES_REFRESH_SECONDS = 3600
    state.switches_off(None)
    state.switches_off("default")
