"""Receivers for the tests: switchable ones (sync and async) and a plain one."""

from __future__ import annotations

from typing import Any

from switches.introspection import ConnectedReceiver, connected_receivers
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
