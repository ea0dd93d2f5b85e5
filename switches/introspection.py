"""What is connected to Django's signals, and what each receiver is called.

The one module that reads Django's dispatcher internals. Django offers no
public way to list a signal's receivers, nor to swap one where it stands; like
django-extensions' ``list_signals`` this module reads ``Signal.receivers``,
whose entries are ``(lookup_key, receiver_or_weakref, is_async)`` up to Django
5.2 and ``(lookup_key, receiver_or_weakref, sender_weakref, is_async)`` from
6.0. Only the first two items and the last are relied on.

A receiver's name is its dotted path (``profiles.receivers.send_welcome_email``):
a switch belongs to that name, so it covers every signal and sender the receiver
is connected to, and nothing else.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from django.apps import apps
from django.contrib.auth import signals as auth_signals
from django.core import signals as request_signals
from django.db.models import Model
from django.db.models import signals as model_signals
from django.dispatch import Signal

# The attribute that marks a switchable wrapper and holds the receiver's name.
SWITCH_ATTR = "receiver_switch_name"

SIGNALS: dict[str, Signal] = {
    "pre_init": model_signals.pre_init,
    "post_init": model_signals.post_init,
    "pre_save": model_signals.pre_save,
    "post_save": model_signals.post_save,
    "pre_delete": model_signals.pre_delete,
    "post_delete": model_signals.post_delete,
    "m2m_changed": model_signals.m2m_changed,
    "request_started": request_signals.request_started,
    "request_finished": request_signals.request_finished,
    "got_request_exception": request_signals.got_request_exception,
    "user_logged_in": auth_signals.user_logged_in,
    "user_logged_out": auth_signals.user_logged_out,
    "user_login_failed": auth_signals.user_login_failed,
}

Receiver = Callable[..., Any]


def dotted_name(receiver: Receiver) -> str:
    """``module.qualname`` of a function or method; of its class for another callable."""
    name = getattr(receiver, SWITCH_ATTR, None)
    if isinstance(name, str):
        return name
    module = getattr(receiver, "__module__", None) or type(receiver).__module__
    qualname = getattr(receiver, "__qualname__", None) or type(receiver).__qualname__
    return f"{module}.{qualname}"


def is_switchable(receiver: Receiver) -> bool:
    """Whether ``receiver`` is the wrapper :func:`switches.wrapping.switchable` makes."""
    return hasattr(receiver, SWITCH_ATTR)


@dataclass(frozen=True)
class ConnectedReceiver:
    """One receiver connected to one signal, for one sender or for all (``sender=None``)."""

    name: str
    signal: str
    sender: str | None
    dispatch_uid: str | None
    is_async: bool
    switchable: bool


def connected_receivers() -> list[ConnectedReceiver]:
    """Every live receiver of :data:`SIGNALS`, in signal order, then in connection order."""
    models_by_id = {id(m): m for m in apps.get_models(include_auto_created=True)}
    return [
        _connection(signal_name, entry, receiver, models_by_id)
        for signal_name, entry, receiver in _entries()
    ]


def replace_connected(replacement: Callable[[Receiver], Receiver | None]) -> None:
    """Swap live receivers of :data:`SIGNALS` for ``replacement(receiver)``, where they stand.

    ``replacement`` returns the callable to connect instead, or None to keep the
    receiver. Each swapped entry keeps its lookup key (so ``dispatch_uid`` and
    ``disconnect()`` work as before) and its place in the list (so receivers run
    in the same order); the new callable is held strongly.
    """
    for signal in SIGNALS.values():
        # Django's private list and cache: there is no public way to swap a receiver in place.
        with signal.lock:
            entries = signal.receivers
            for index, entry in enumerate(entries):
                receiver = _live(entry[1])
                new = replacement(receiver) if receiver is not None else None
                if new is not None:
                    entries[index] = (entry[0], new, *entry[2:])
            signal.sender_receivers_cache.clear()


def live_receivers(signal: Signal, sender: type[Model]) -> list[Receiver]:
    """The receivers ``signal`` would call for ``sender``, sync then async, as Django finds them."""
    # Django's private lookup: the public send() would call the receivers, not list them.
    sync_receivers, async_receivers = signal._live_receivers(sender)
    return [*sync_receivers, *async_receivers]


def _entries() -> Iterator[tuple[str, tuple[Any, ...], Receiver]]:
    for signal_name, signal in SIGNALS.items():
        # Django's private list: there is no public way to list a signal's receivers.
        with signal.lock:
            entries = list(signal.receivers)
        for entry in entries:
            receiver = _live(entry[1])
            if receiver is not None:
                yield signal_name, entry, receiver


def _live(ref: Any) -> Receiver | None:
    if isinstance(ref, weakref.ReferenceType):
        return cast("Receiver | None", ref())
    return cast("Receiver", ref)


def _make_id(target: object) -> Hashable:
    # As django.dispatch.dispatcher._make_id, which builds lookup keys.
    if hasattr(target, "__func__"):
        return (id(target.__self__), id(target.__func__))  # type: ignore[attr-defined]
    return id(target)


def _connection(
    signal_name: str,
    entry: tuple[Any, ...],
    receiver: Receiver,
    models_by_id: dict[int, type[Model]],
) -> ConnectedReceiver:
    (receiver_key, sender_key) = entry[0]
    original = getattr(receiver, "__wrapped__", receiver)
    own_keys = {_make_id(receiver), _make_id(original)}
    return ConnectedReceiver(
        name=dotted_name(receiver),
        signal=signal_name,
        sender=_sender_label(entry, sender_key, models_by_id),
        dispatch_uid=None if receiver_key in own_keys else str(receiver_key),
        is_async=bool(entry[-1]),
        switchable=is_switchable(receiver),
    )


def _sender_label(
    entry: tuple[Any, ...], sender_key: Hashable, models_by_id: dict[int, type[Model]]
) -> str | None:
    if sender_key == _make_id(None):
        return None
    # Django 6.0+ keeps a weak reference to the sender when it can.
    sender_ref = entry[2] if len(entry) == 4 else None
    sender = sender_ref() if isinstance(sender_ref, weakref.ReferenceType) else None
    if sender is None and isinstance(sender_key, int):
        sender = models_by_id.get(sender_key)
    if sender is None:
        # Django 5.2 keeps only id(sender): a sender that is not a model cannot be named.
        return f"<unresolved sender, id {sender_key!r}>"
    if isinstance(sender, type) and issubclass(sender, Model):
        return sender._meta.label
    if isinstance(sender, type):
        return f"{sender.__module__}.{sender.__qualname__}"
    text = repr(sender)
    return text if len(text) <= 60 else text[:57] + "..."
