"""``@switchable``: the thin wrapper that makes a receiver obey its switch and ``muted()``.

A receiver is *switchable* when the callable connected to the signal is this
wrapper: it looks at the switch, then calls the receiver or, when off or
muted, its ``when_off`` handler if it has one, else nothing (``None``).
This project decorates its receivers with it; receivers of other apps named in
the ``RECEIVER_SWITCHES_EXTRA`` setting are wrapped in place by
:func:`wrap_connected` once every app is ready.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from typing import Any, TypeVar, cast, overload

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings

from switches import state
from switches.introspection import SWITCH_ATTR, dotted_name, is_switchable, replace_connected
from switches.state import SwitchInfo

F = TypeVar("F", bound=Callable[..., Any])
# Called instead of the receiver when it is off or muted: handler(switch, *args, **kwargs).
WhenOff = Callable[..., Any]

_switchable_names: set[str] = set()


@overload
def switchable(receiver: F, *, when_off: WhenOff | None = None) -> F: ...


@overload
def switchable(receiver: None = None, *, when_off: WhenOff | None = None) -> Callable[[F], F]: ...


def switchable(
    receiver: F | None = None, *, when_off: WhenOff | None = None
) -> F | Callable[[F], F]:
    """Decorate a receiver so that it obeys its switch and ``muted()``.

    When on, the receiver is called as before; when off or muted, it is not
    called and the wrapper returns ``None``, or, with ``when_off``, what
    ``when_off(switch, *args, **kwargs)`` returns: ``switch`` is a
    :class:`~switches.state.SwitchInfo` saying which switch or mute held the
    receiver off, and why; the other arguments are the signal's. Use it to
    record that the receiver's effect was deliberately skipped::

        def welcome_suppressed(switch, sender, instance, created, **kwargs): ...

        @switchable(when_off=welcome_suppressed)
        def send_welcome_email(sender, instance, created, **kwargs): ...

    Async receivers get an async wrapper, so Django still awaits them; their
    ``when_off`` may be async, or sync (then it runs in a thread, as the
    receiver's database work would, through ``sync_to_async``).
    """
    if receiver is None:
        return functools.partial(_decorate, when_off=when_off)
    return _decorate(receiver, when_off=when_off)


def _decorate(receiver: F, *, when_off: WhenOff | None) -> F:
    return _wrap(receiver, dotted_name(receiver), when_off=when_off)


def _wrap(receiver: F, name: str, *, when_off: WhenOff | None = None) -> F:
    muted_names = state.muted_names
    switches_off = state.switches_off
    cached_switches = state.cached_switches

    wrapper: Callable[..., Any]
    if iscoroutinefunction(receiver):
        async_when_off = _async_handler(when_off)

        @functools.wraps(receiver)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            if name in muted_names.get():
                return await async_when_off(_muted(name), *args, **kwargs)
            using = kwargs.get("using")
            off = cached_switches(using)
            if off is None:  # the refresh reads the database: not from the event loop
                off = await sync_to_async(switches_off)(using)
            if name in off:
                return await async_when_off(off[name], *args, **kwargs)
            return await receiver(*args, **kwargs)

        wrapper = async_wrapper
    else:
        if when_off is not None and iscoroutinefunction(when_off):
            raise TypeError(f"{name}: a sync receiver needs a sync when_off handler.")
        if when_off is None:

            @functools.wraps(receiver)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                if name in muted_names.get() or name in switches_off(kwargs.get("using")):
                    return None
                return receiver(*args, **kwargs)

        else:
            handler = when_off

            @functools.wraps(receiver)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                if name in muted_names.get():
                    return handler(_muted(name), *args, **kwargs)
                off = switches_off(kwargs.get("using"))
                if name in off:
                    return handler(off[name], *args, **kwargs)
                return receiver(*args, **kwargs)

        wrapper = sync_wrapper
    setattr(wrapper, SWITCH_ATTR, name)
    _switchable_names.add(name)
    return cast(F, wrapper)


def _muted(name: str) -> SwitchInfo:
    return state.muted_switch(name) or SwitchInfo(name=name, muted=True)


def _async_handler(when_off: WhenOff | None) -> Callable[..., Any]:
    """``when_off`` as a coroutine function; one that returns None without it."""
    if when_off is None:

        async def nothing(switch: SwitchInfo, *args: Any, **kwargs: Any) -> None:
            return None

        return nothing
    if iscoroutinefunction(when_off):
        return when_off
    return sync_to_async(when_off)


def switchable_names() -> frozenset[str]:
    """Names of every receiver made switchable in this process."""
    return frozenset(_switchable_names)


def extra_names() -> frozenset[str]:
    """Receivers of other apps that the ``RECEIVER_SWITCHES_EXTRA`` setting makes switchable."""
    return frozenset(getattr(settings, "RECEIVER_SWITCHES_EXTRA", ()))


def wrap_connected(names: Collection[str]) -> list[str]:
    """Make the connected receivers called ``names`` switchable, where they stand.

    Each keeps its lookup key and its place among the signal's receivers
    (:func:`switches.introspection.replace_connected`). Returns the names
    wrapped; running it again wraps nothing twice.
    """
    wrapped: list[str] = []
    if not names:
        return wrapped

    def wrap(receiver: Callable[..., Any]) -> Callable[..., Any] | None:
        if is_switchable(receiver):
            return None
        name = dotted_name(receiver)
        if name not in names:
            return None
        wrapped.append(name)
        return _wrap(receiver, name)

    replace_connected(wrap)
    return wrapped
