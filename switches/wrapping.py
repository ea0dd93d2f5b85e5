"""``@switchable``: the thin wrapper that makes a receiver obey its switch and ``muted()``.

A receiver is *switchable* when the callable connected to the signal is this
wrapper: it looks at the switch, then calls the receiver or returns ``None``.
This project decorates its receivers with it; receivers of other apps named in
the ``RECEIVER_SWITCHES_EXTRA`` setting are wrapped in place by
:func:`wrap_connected` once every app is ready.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from typing import Any, TypeVar, cast

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings

from switches import state
from switches.introspection import SWITCH_ATTR, dotted_name, is_switchable, replace_connected

F = TypeVar("F", bound=Callable[..., Any])

_switchable_names: set[str] = set()


def switchable(receiver: F) -> F:
    """Decorate a receiver so that it obeys its switch and ``muted()``.

    When on, the receiver is called as before; when off or muted, it returns
    ``None`` without being called. Async receivers get an async wrapper, so
    Django still awaits them.
    """
    return _wrap(receiver, dotted_name(receiver))


def _wrap(receiver: F, name: str) -> F:
    muted_names = state.muted_names
    switched_off = state.switched_off
    cached_off = state.cached_off

    wrapper: Callable[..., Any]
    if iscoroutinefunction(receiver):

        @functools.wraps(receiver)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            if name in muted_names.get():
                return None
            using = kwargs.get("using")
            off = cached_off(using)
            if off is None:  # the refresh reads the database: not from the event loop
                off = await sync_to_async(switched_off)(using)
            if name in off:
                return None
            return await receiver(*args, **kwargs)

        wrapper = async_wrapper
    else:

        @functools.wraps(receiver)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            if name in muted_names.get() or name in switched_off(kwargs.get("using")):
                return None
            return receiver(*args, **kwargs)

        wrapper = sync_wrapper
    setattr(wrapper, SWITCH_ATTR, name)
    _switchable_names.add(name)
    return cast(F, wrapper)


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
