"""Where a write came from: the signal-sending paths on the stack, the operation, the call site.

Django sends a model's signals from three places only, and the detector
recognises each by its code object on the stack, never by a name that a
project could reuse:

- ``Model.save_base``: ``pre_save``/``post_save`` for ``type(self)`` (a proxy
  or a child sends them as itself, so receivers of the concrete or parent
  model do not run);
- ``Collector.delete``: ``pre_delete``/``post_delete`` for each model it
  collected (not the auto-created through models, as Django does);
- the many-to-many manager's ``_add_items``, ``_remove_items`` and ``clear``:
  ``m2m_changed`` for its through model.

A ``Signal.send`` frame ends the walk: below it, a receiver is writing, and
what it writes is judged on its own (a receiver's ``save()`` is a path of its
own; its ``bulk_create`` is a skip, even inside another model's save).
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

import asgiref
import django
from django.db.models import Model, signals
from django.db.models.deletion import Collector
from django.db.models.fields import related_descriptors
from django.dispatch import Signal

from signalaudit.report import CallSite
from switches.introspection import live_receivers

# (signal name, id(receiver)): what ran, compared with what a write needed.
Sent = set[tuple[str, int]]

SAVE_SIGNALS = (("pre_save", signals.pre_save), ("post_save", signals.post_save))
DELETE_SIGNALS = (("pre_delete", signals.pre_delete), ("post_delete", signals.post_delete))
M2M_SIGNALS = (("m2m_changed", signals.m2m_changed),)

_DJANGO = os.path.dirname(django.__file__) + os.sep


def _sent_by_save(frame: FrameType) -> Sent:
    instance = frame.f_locals.get("self")
    return receivers_of(type(instance), SAVE_SIGNALS) if isinstance(instance, Model) else set()


def _sent_by_collector(frame: FrameType) -> Sent:
    collector = frame.f_locals.get("self")
    sent: Sent = set()
    for model in getattr(collector, "data", {}):
        if not model._meta.auto_created:
            sent |= receivers_of(model, DELETE_SIGNALS)
    return sent


def _sent_by_m2m_manager(frame: FrameType) -> Sent:
    through = getattr(frame.f_locals.get("self"), "through", None)
    return receivers_of(through, M2M_SIGNALS) if through is not None else set()


def receivers_of(sender: Any, pairs: tuple[tuple[str, Signal], ...]) -> Sent:
    return {(name, id(r)) for name, signal in pairs for r in live_receivers(signal, sender)}


def _nested_code(code: CodeType, names: set[str]) -> list[CodeType]:
    found = []
    for const in code.co_consts:
        if isinstance(const, CodeType):
            if const.co_name in names:
                found.append(const)
            found += _nested_code(const, names)
    return found


_SEND_CODES = {
    getattr(Signal, name).__code__
    for name in ("send", "send_robust", "asend", "asend_robust")
    if hasattr(Signal, name)
}
_PATHS: dict[CodeType, Callable[[FrameType], Sent]] = {
    Model.save_base.__code__: _sent_by_save,
    Collector.delete.__code__: _sent_by_collector,
    **{
        code: _sent_by_m2m_manager
        for code in _nested_code(
            related_descriptors.create_forward_many_to_many_manager.__code__,
            {"_add_items", "_remove_items", "clear"},
        )
    },
}

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


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {_DJANGO, os.path.dirname(__file__) + os.sep, os.path.dirname(asgiref.__file__) + os.sep}
    dirs |= {paths[key] + os.sep for key in ("stdlib", "platstdlib") if key in paths}
    return tuple(sorted(dirs))


_LIBRARY_DIRS = _library_dirs()
_is_library: dict[str, bool] = {}
_operation_of: dict[CodeType, str | None] = {}


def _library(filename: str) -> bool:
    try:
        return _is_library[filename]
    except KeyError:
        # "<frozen runpy>" and the like are the interpreter's own.
        result = filename.startswith((*_LIBRARY_DIRS, "<"))
        _is_library[filename] = result
        return result


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


def walk(frame: FrameType | None, needed: Sent) -> tuple[Sent, str | None, CallSite | None]:
    """Which of ``needed`` no path on the stack sent, the operation, the call site.

    From ``frame`` outwards; it stops as soon as the paths seen sent all of
    ``needed`` (a plain ``save()``: a few frames), and gives ``set()`` then.
    """
    missing = set(needed)
    operation: str | None = None
    site: CallSite | None = None
    while frame is not None:
        code = frame.f_code
        if code in _SEND_CODES:
            break
        path = _PATHS.get(code)
        if path is not None:
            missing -= path(frame)
            if not missing:
                return missing, None, None
        if site is None:
            if _library(code.co_filename):
                operation = _operation(code) or operation
            else:
                site = CallSite(code.co_filename, frame.f_lineno, code.co_name)
        frame = frame.f_back
    return missing, operation, site
