"""Where a write came from: the signal-sending paths on the stack, the operation, the call site.

Django sends a model's signals from three places only, and the detector
recognises each by its code object on the stack, never by a name that a
project could reuse:

- ``Model.save_base``: ``pre_save``/``post_save`` for ``type(self)`` (a proxy
  or a child sends them as itself, so receivers of the concrete or parent
  model do not run), and none for an auto-created through model;
- ``Collector.delete``: ``pre_delete``/``post_delete`` for each model it
  collected (not the auto-created through models, as Django does);
- the many-to-many manager's methods that send ``m2m_changed`` for its
  through model (``_add_items``, ``_remove_items``, ``clear``; Django 6.1's
  ``_clear_base``): found as the manager's functions that name the signal.

A ``Signal.send`` frame ends the walk: below it, a receiver is writing, and
what it writes is judged on its own (a receiver's ``save()`` is a path of its
own; its ``bulk_create`` is a skip, even inside another model's save).

The walk is in two passes so that a write on a path costs a few frames:
:func:`unsent` looks only for the paths, and stops as soon as they sent every
receiver needed; only a write that did skip receivers pays for
:func:`call_site`, which names the operation and the first frame outside
Django, the standard library and the detector (for a write made through
``sync_to_async``, as ``abulk_create()`` and ``aupdate()`` are: the line of
the ``await`` in the task that waits for it).
"""

from __future__ import annotations

import asyncio
import os
import sysconfig
import threading
from collections.abc import Callable, Hashable
from types import CodeType, CoroutineType, FrameType, GeneratorType
from typing import Any

import asgiref
import django
from asgiref.sync import SyncToAsync
from django.db.backends.utils import CursorWrapper
from django.db.models import Model, signals
from django.db.models.deletion import Collector
from django.db.models.fields import related_descriptors
from django.dispatch import Signal

from signalaudit.report import CallSite
from switches.introspection import live_receivers

# (signal name, receiver_key(receiver)): what ran, compared with what a write needed.
Sent = set[tuple[str, Hashable]]

SAVE_SIGNALS = (("pre_save", signals.pre_save), ("post_save", signals.post_save))
DELETE_SIGNALS = (("pre_delete", signals.pre_delete), ("post_delete", signals.post_delete))
M2M_SIGNALS = (("m2m_changed", signals.m2m_changed),)
_SAVE_NAMES = frozenset(name for name, _ in SAVE_SIGNALS)
_DELETE_NAMES = frozenset(name for name, _ in DELETE_SIGNALS)
_M2M_NAMES = frozenset(name for name, _ in M2M_SIGNALS)

_DJANGO = os.path.dirname(django.__file__) + os.sep


def receiver_key(receiver: object) -> Hashable:
    """A receiver's identity, the same on every lookup, as Django's dispatcher keys it.

    Not ``id(receiver)``: a method connected weakly comes back from
    ``live_receivers()`` as a new bound method on each call, whose id may be
    another's (or that of the previous call's, freed since).
    """
    if hasattr(receiver, "__func__"):
        return (id(receiver.__self__), id(receiver.__func__))  # type: ignore[attr-defined]
    return id(receiver)


def receivers_of(sender: Any, pairs: tuple[tuple[str, Signal], ...]) -> Sent:
    return {
        (name, receiver_key(r)) for name, signal in pairs for r in live_receivers(signal, sender)
    }


def _without(missing: Sent, names: frozenset[str]) -> Sent:
    return {key for key in missing if key[0] not in names}


def _after_save(frame: FrameType, model: type[Model], missing: Sent) -> Sent:
    instance = frame.f_locals.get("self")
    if not isinstance(instance, Model):
        return missing
    sender = type(instance)
    if (sender._meta.concrete_model or sender)._meta.auto_created:
        return missing  # save_base sends nothing for an auto-created through model
    if sender is model:
        return _without(missing, _SAVE_NAMES)
    return missing - receivers_of(sender, SAVE_SIGNALS)


def _after_collector(frame: FrameType, model: type[Model], missing: Sent) -> Sent:
    collected = getattr(frame.f_locals.get("self"), "data", None) or {}
    if model in collected and not model._meta.auto_created:
        return _without(missing, _DELETE_NAMES)
    sent: Sent = set()
    for collected_model in collected:
        if not collected_model._meta.auto_created:
            sent |= receivers_of(collected_model, DELETE_SIGNALS)
    return missing - sent


def _after_m2m_manager(frame: FrameType, model: type[Model], missing: Sent) -> Sent:
    through = getattr(frame.f_locals.get("self"), "through", None)
    if through is None:
        return missing
    if through is model:
        return _without(missing, _M2M_NAMES)
    return missing - receivers_of(through, M2M_SIGNALS)


def _nested_code(code: CodeType, wanted: Callable[[CodeType], bool]) -> list[CodeType]:
    found = []
    for const in code.co_consts:
        if isinstance(const, CodeType):
            if wanted(const):
                found.append(const)
            found += _nested_code(const, wanted)
    return found


def _send_codes() -> set[CodeType]:
    """Signal's send methods and the functions nested in them that call receivers."""
    codes = set()
    for name in ("send", "send_robust", "asend", "asend_robust"):
        method = getattr(Signal, name, None)
        if method is not None:
            codes.add(method.__code__)
            codes.update(_nested_code(method.__code__, lambda code: True))
    return codes


def _m2m_codes() -> list[CodeType]:
    codes = _nested_code(
        related_descriptors.create_forward_many_to_many_manager.__code__,
        lambda code: "m2m_changed" in code.co_names and "send" in code.co_names,
    )
    if not codes:
        raise ImportError("signalaudit: no many-to-many manager method sends m2m_changed here")
    return codes


_SEND_CODES = _send_codes()
_PATHS: dict[CodeType, Callable[[FrameType, type[Model], Sent], Sent]] = {
    Model.save_base.__code__: _after_save,
    Collector.delete.__code__: _after_collector,
    **dict.fromkeys(_m2m_codes(), _after_m2m_manager),
}
# What unsent() looks for on each frame, by id(code): a code object hashes its whole
# contents on every lookup, an int does not. The codes above live as long as the process
# (they are Django's, and held here), so their ids are never reused.
_END_OF_WALK = None
_WALK_STOPS: dict[int, Callable[[FrameType, type[Model], Sent], Sent] | None] = {
    **{id(code): path for code, path in _PATHS.items()},
    **dict.fromkeys(map(id, _SEND_CODES), _END_OF_WALK),
}

# A sync_to_async call runs in a thread whose stack holds no frame of the awaiting
# code: thread_handler's frame leads to it (see _awaiting_frames).
_THREAD_HANDLER: CodeType = SyncToAsync.thread_handler.__code__
_SYNC_TO_ASYNC_CALL: CodeType = SyncToAsync.__call__.__code__
# What the wrapper's frame is called from; frames below it are other execute wrappers.
_EXECUTE_WITH_WRAPPERS: CodeType = CursorWrapper._execute_with_wrappers.__code__  # type: ignore[attr-defined]

# The operation a write belongs to, by the Django function it ran under; the
# outermost one before the call site wins (bulk_update runs QuerySet.update).
_OPERATIONS: dict[tuple[str, str], str] = {
    ("db/models/query.py", "bulk_create"): "bulk_create",
    ("db/models/query.py", "bulk_update"): "bulk_update",
    ("db/models/query.py", "update"): "QuerySet.update",
    ("db/models/query.py", "_update"): "QuerySet._update",
    ("db/models/query.py", "_insert"): "QuerySet._insert",
    ("db/models/query.py", "_raw_delete"): "QuerySet._raw_delete",
    ("db/models/query.py", "delete"): "QuerySet.delete",
    ("db/models/deletion.py", "delete"): "delete() (on_delete)",
    ("db/models/base.py", "save_base"): "save()",
    ("db/backends/utils.py", "execute"): "raw SQL",
    ("db/backends/utils.py", "executemany"): "raw SQL (executemany)",
}
_RELATED_MANAGER = "db/models/fields/related_descriptors.py"


# The code that runs a command under an audit (manage.py signal_audit): what is outside it
# started the audit and is no call site; a write with nothing of the user's code below it
# has none.
_RUNNER_FILES = (
    os.path.join(os.path.dirname(__file__), "commands.py"),
    os.path.join("commands", "management", "commands", "signal_audit.py"),
)


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {_DJANGO, os.path.dirname(__file__) + os.sep, os.path.dirname(asgiref.__file__) + os.sep}
    dirs |= {paths[key] + os.sep for key in ("stdlib", "platstdlib") if key in paths}
    return tuple(sorted(dirs))


_LIBRARY_DIRS = _library_dirs()
# What a frame's file is to call_site(): one of these.
_CALL_SITE, _LIBRARY, _RUNNER = 0, 1, 2
_kind_of: dict[str, int] = {}
_operation_of: dict[CodeType, str | None] = {}


def _kind(filename: str) -> int:
    try:
        return _kind_of[filename]
    except KeyError:
        pass
    if filename.endswith(_RUNNER_FILES):
        kind = _RUNNER
    elif filename.startswith((*_LIBRARY_DIRS, "<frozen ")):
        # "<frozen runpy>" and the like are the interpreter's own; "<string>" and
        # "<stdin>" are code someone gave it (manage.py shell -c, exec()).
        kind = _LIBRARY
    else:
        kind = _CALL_SITE
    _kind_of[filename] = kind
    return kind


def _operation(code: CodeType) -> str | None:
    try:
        return _operation_of[code]
    except KeyError:
        pass
    label = None
    if code.co_filename.startswith(_DJANGO):
        where = code.co_filename[len(_DJANGO) :].replace(os.sep, "/")
        label = _OPERATIONS.get((where, code.co_name))
        if label is None and where == _RELATED_MANAGER and not code.co_name.startswith("_"):
            label = f"RelatedManager.{code.co_name}"
    _operation_of[code] = label
    return label


def unsent(frame: FrameType | None, model: type[Model], needed: Sent) -> Sent:
    """Which of ``needed`` (receivers of ``model``) no path on the stack sends.

    From ``frame`` outwards, up to the first ``Signal.send``; it stops as soon
    as the paths seen sent all of ``needed`` (a plain ``save()``: a few
    frames), and gives ``set()`` then.
    """
    missing = needed
    stops = _WALK_STOPS
    while frame is not None:
        key = id(frame.f_code)
        if key in stops:
            path = stops[key]
            if path is _END_OF_WALK:
                break
            missing = path(frame, model, missing)
            if not missing:
                return missing
        frame = frame.f_back
    return missing


def call_site(frame: FrameType | None) -> tuple[str | None, CallSite | None]:
    """The operation (the outermost Django function known) and the first frame outside.

    Frames up to the cursor's ``_execute_with_wrappers``, when it is among the
    first few, are other execute wrappers and are passed over. The code that
    runs a command under an audit (``manage.py signal_audit``) ends the walk:
    a write made by Django alone there has no call site (None).
    """
    start, seen = frame, 0
    while start is not None and seen < 8:
        if start.f_code is _EXECUTE_WITH_WRAPPERS:
            frame = start
            break
        start, seen = start.f_back, seen + 1
    operation: str | None = None
    while frame is not None:
        code = frame.f_code
        if code in _SEND_CODES:
            break
        kind = _kind(code.co_filename)
        if kind == _CALL_SITE:
            return operation, CallSite(code.co_filename, frame.f_lineno, code.co_name)
        if kind == _RUNNER:
            return operation, None
        operation = _operation(code) or operation
        if code is _THREAD_HANDLER:
            # Called through sync_to_async (abulk_create, aupdate, …): the line is the await.
            for awaiting in reversed(_awaiting_frames(frame)):
                awaiting_code = awaiting.f_code
                kind = _kind(awaiting_code.co_filename)
                if kind == _CALL_SITE:
                    site = CallSite(
                        awaiting_code.co_filename, awaiting.f_lineno, awaiting_code.co_name
                    )
                    return operation, site
                if kind == _RUNNER:
                    return operation, None
                operation = _operation(awaiting_code) or operation
        frame = frame.f_back
    return operation, None


def _awaiting_frames(handler: FrameType) -> list[FrameType]:
    """The frames, outermost first, of the coroutines awaiting the call ``handler`` runs.

    ``SyncToAsync.thread_handler`` runs the sync function (``child``) in a
    worker thread while the task that awaits it is suspended in
    ``SyncToAsync.__call__``, with the same ``child``: the task is found among
    its loop's tasks by that, and its chain of awaits (``cr_await``) holds the
    caller's frames. The worker may start before the task has suspended (its
    awaits are not linked while it runs), so after a miss the worker waits for
    the loop to run a callback of ours, which it does only once that step of
    the task has reached its await, and looks once more. Anything unexpected
    (asgiref changed, the task is gone, a gather() in between, a loop that
    does not come round within a second) gives ``[]``: the call site is then
    what the thread's own stack shows, or unknown.
    """
    try:
        loop, child = handler.f_locals["loop"], handler.f_locals["args"][0]
    except (KeyError, IndexError, TypeError):
        return []
    for attempt in range(2):
        try:
            tasks = asyncio.all_tasks(loop)
        except Exception:
            return []
        for task in tasks:
            chain = _chain_to(task.get_coro(), child)
            if chain is not None:
                return chain
        if attempt or not _loop_came_round(loop):
            break
    return []


def _loop_came_round(loop: asyncio.AbstractEventLoop) -> bool:
    """Wait until ``loop``, running in another thread, has finished the step it is in."""
    try:
        if asyncio.get_running_loop() is loop:
            return False  # it cannot come round while this thread is in its step
    except RuntimeError:
        pass  # no loop runs in this thread: the usual case for a worker
    if not loop.is_running():
        return False
    came_round = threading.Event()
    try:
        loop.call_soon_threadsafe(came_round.set)
    except RuntimeError:  # closed meanwhile
        return False
    return came_round.wait(_LOOP_ROUND_TIMEOUT)


_LOOP_ROUND_TIMEOUT = 1.0


def _chain_to(awaitable: Any, child: object) -> list[FrameType] | None:
    """The frames from ``awaitable`` down to the SyncToAsync call running ``child``, or None."""
    chain: list[FrameType] = []
    while isinstance(awaitable, CoroutineType | GeneratorType):
        frame = awaitable.cr_frame if isinstance(awaitable, CoroutineType) else awaitable.gi_frame
        if frame is None:
            return None
        if frame.f_code is _SYNC_TO_ASYNC_CALL:
            return chain if frame.f_locals.get("child") is child else None
        chain.append(frame)
        if isinstance(awaitable, CoroutineType):
            awaitable = awaitable.cr_await
        else:
            awaitable = awaitable.gi_yieldfrom
    return None
