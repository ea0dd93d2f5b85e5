"""Receivers for the tests: switchable ones (sync and async) and a plain one."""

from __future__ import annotations

from typing import Any

from switches.introspection import ConnectedReceiver, connected_receivers
from switches.state import SwitchInfo
from switches.wrapping import switchable

calls: list[str] = []

SYNC = "tests.switches.receivers.record_sync"
ASYNC = "tests.switches.receivers.record_async"


@switchable
def record_sync(sender: Any, **kwargs: Any) -> str:
    calls.append("sync")
    return "sync"


@switchable
async def record_async(sender: Any, **kwargs: Any) -> str:
    calls.append("async")
    return "async"


def record_plain(sender: Any, **kwargs: Any) -> str:
    calls.append("plain")
    return "plain"


@switchable
def explode(sender: Any, **kwargs: Any) -> None:
    calls.append("explode")
    raise RuntimeError("receiver failed")


def connection_of(name: str, signal: str) -> ConnectedReceiver:
    """The connection of the receiver ``name`` to ``signal``, as the listing shows it."""
    return next(c for c in connected_receivers() if c.name == name and c.signal == signal)


# Receivers with a when_off handler: what they record says which ran, and with what.
HANDLED_SYNC = "tests.switches.receivers.handled_sync"
HANDLED_ASYNC = "tests.switches.receivers.handled_async"
HANDLED_ASYNC_SYNC_HANDLER = "tests.switches.receivers.handled_async_sync_handler"
skipped: list[tuple[str, SwitchInfo, dict[str, Any]]] = []


def note_skipped(switch: SwitchInfo, sender: Any, **kwargs: Any) -> str:
    skipped.append(("sync handler", switch, {"sender": sender, **kwargs}))
    return "skipped"


async def note_skipped_async(switch: SwitchInfo, sender: Any, **kwargs: Any) -> str:
    skipped.append(("async handler", switch, {"sender": sender, **kwargs}))
    return "skipped async"


@switchable(when_off=note_skipped)
def handled_sync(sender: Any, **kwargs: Any) -> str:
    calls.append("handled sync")
    return "ran"


@switchable(when_off=note_skipped_async)
async def handled_async(sender: Any, **kwargs: Any) -> str:
    calls.append("handled async")
    return "ran async"


@switchable(when_off=note_skipped)
async def handled_async_sync_handler(sender: Any, **kwargs: Any) -> str:
    calls.append("handled async, sync handler")
    return "ran async"
