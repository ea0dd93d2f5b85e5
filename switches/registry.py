"""Which receivers are connected, which of them obey a switch, and what they are called.

A receiver is *switchable* when the callable connected to the signal is the thin
wrapper :func:`switchable` makes: it looks at the switch, then calls the
receiver or returns ``None``. This project decorates its receivers with it;
receivers of other apps named in the ``RECEIVER_SWITCHES_EXTRA`` setting are
wrapped in place by :func:`wrap_connected` once every app is ready.

A receiver's name is its dotted path (``profiles.receivers.send_welcome_email``):
a switch belongs to that name, so it covers every signal and sender the receiver
is connected to, and nothing else.

Django offers no public way to list a signal's receivers; like
django-extensions' ``list_signals`` this module reads ``Signal.receivers``,
whose entries are ``(lookup_key, receiver_or_weakref, is_async)`` up to Django
5.2 and ``(lookup_key, receiver_or_weakref, sender_weakref, is_async)`` from
6.0. Only the first two items and the last are relied on.
"""

from __future__ import annotations

import difflib
import functools
import weakref
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.apps import apps
from django.conf import settings
from django.contrib.auth import signals as auth_signals
from django.core import signals as request_signals
from django.db.models import Model
from django.db.models import signals as model_signals
from django.dispatch import Signal

from dbtools.errors import UsageError
from switches import state

F = TypeVar("F", bound=Callable[..., Any])

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

_switchable_names: set[str] = set()


def dotted_name(receiver: Callable[..., Any]) -> str:
    """``module.qualname`` of a function or method; of its class for another callable."""
    name = getattr(receiver, SWITCH_ATTR, None)
    if isinstance(name, str):
        return name
    module = getattr(receiver, "__module__", None) or type(receiver).__module__
    qualname = getattr(receiver, "__qualname__", None) or type(receiver).__qualname__
    return f"{module}.{qualname}"


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

    Each entry keeps its lookup key (so ``dispatch_uid`` and ``disconnect()``
    work as before) and its place in the list (so receivers run in the same
    order). The wrapper holds the receiver strongly. Returns the names wrapped;
    running it again wraps nothing twice.
    """
    wrapped: list[str] = []
    if not names:
        return wrapped
    for signal in SIGNALS.values():
        with signal.lock:
            entries = signal.receivers
            for index, entry in enumerate(entries):
                receiver = _live(entry[1])
                if receiver is None or hasattr(receiver, SWITCH_ATTR):
                    continue
                name = dotted_name(receiver)
                if name in names:
                    entries[index] = (entry[0], _wrap(receiver, name), *entry[2:])
                    wrapped.append(name)
            signal.sender_receivers_cache.clear()
    return wrapped


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


def _entries() -> Iterator[tuple[str, tuple[Any, ...], Callable[..., Any]]]:
    for signal_name, signal in SIGNALS.items():
        with signal.lock:
            entries = list(signal.receivers)
        for entry in entries:
            receiver = _live(entry[1])
            if receiver is not None:
                yield signal_name, entry, receiver


def _live(ref: Any) -> Callable[..., Any] | None:
    if isinstance(ref, weakref.ReferenceType):
        return cast("Callable[..., Any] | None", ref())
    return cast("Callable[..., Any]", ref)


def _make_id(target: object) -> Hashable:
    # As django.dispatch.dispatcher._make_id, which builds lookup keys.
    if hasattr(target, "__func__"):
        return (id(target.__self__), id(target.__func__))  # type: ignore[attr-defined]
    return id(target)


def _connection(
    signal_name: str,
    entry: tuple[Any, ...],
    receiver: Callable[..., Any],
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
        switchable=hasattr(receiver, SWITCH_ATTR),
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


class ReceiverNameError(UsageError, LookupError):
    """Names that are not switchable receivers; the message lists the closest known names."""

    def __init__(self, *, unknown: dict[str, list[str]], not_switchable: list[str]) -> None:
        self.unknown = unknown
        self.not_switchable = not_switchable
        problems = []
        for name, closest in unknown.items():
            hint = f" (closest: {', '.join(closest)})" if closest else ""
            problems.append(f"unknown receiver {name!r}{hint}")
        for name in not_switchable:
            problems.append(
                f"{name!r} is connected but not switchable (name it in the "
                "RECEIVER_SWITCHES_EXTRA setting to make it switchable)"
            )
        super().__init__("; ".join(problems) + "; 'manage.py receivers list' shows every receiver.")


def resolve_names(names: Iterable[str], *, also: Collection[str] = ()) -> list[str]:
    """Check that each name is a switchable receiver; return them, duplicates dropped.

    ``also`` admits further names (the switch command passes the switches
    stored for receivers that no longer exist, so they can be switched back on).
    Raises :class:`ReceiverNameError`, naming the closest known receivers, when
    a name is unknown or is a receiver that is not switchable.
    """
    wanted = list(dict.fromkeys(names))
    known = switchable_names() | frozenset(also)
    unknown: dict[str, list[str]] = {}
    not_switchable: list[str] = []
    connected: set[str] | None = None
    for name in wanted:
        if name in known:
            continue
        if connected is None:
            connected = {c.name for c in connected_receivers()}
        if name in connected:
            not_switchable.append(name)
        else:
            unknown[name] = closest_names(name, known | connected)
    if unknown or not_switchable:
        raise ReceiverNameError(unknown=unknown, not_switchable=not_switchable)
    return wanted


def closest_names(name: str, candidates: Collection[str], limit: int = 3) -> list[str]:
    """Known names ``name`` was probably meant as: same last part first, then spelling."""
    last = name.rsplit(".", 1)[-1]
    same_last = sorted(c for c in candidates if c.rsplit(".", 1)[-1] == last)
    similar = difflib.get_close_matches(name, list(candidates), n=limit, cutoff=0.6)
    if "." not in name:  # a bare function name: compare it with the last parts
        by_last = {c.rsplit(".", 1)[-1]: c for c in sorted(candidates)}
        similar += [by_last[m] for m in difflib.get_close_matches(name, list(by_last), n=limit)]
    return list(dict.fromkeys([*same_last, *similar]))[:limit]
