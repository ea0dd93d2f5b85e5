"""The detector: an execute wrapper on every connection, while at least one audit is active.

Django's documented ``execute_wrappers`` see every statement that goes through
its cursor wrapper. While active, the wrapper is put on every connection this
thread has, and on every connection any thread opens (``connection_created``),
so ``--jobs`` threads are seen too. A statement that writes rows of a model
with receivers for that kind of write is checked against the stack
(:mod:`signalaudit.paths`): the receivers no signal-sending path ran are
reported, with the call site. When the last audit ends, the wrapper and the
receiver are removed again: inactive, the detector costs nothing at all.

Blind spots, by construction: writes that do not go through Django's cursor
wrapper (psycopg's ``copy()`` and other raw DB-API cursors, other processes,
triggers, ``dbshell``) and connections other threads opened before the audit
began. A write path of one's own reports itself with :func:`report_write`, as
``seed_users --via bulk`` does for its COPY.
"""

from __future__ import annotations

import contextvars
import re
import sys
import threading
import weakref
from collections.abc import Callable, Iterable
from contextlib import ContextDecorator
from types import FrameType, TracebackType
from typing import Any, Protocol

from django.apps import apps
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.db.models import Model

from signalaudit import paths
from signalaudit.report import AuditReport, Skip, SkippedReceiver
from signalaudit.statements import Target, Write, written_tables
from switches.introspection import dotted_name, live_receivers

_UID = "signalaudit.detector.attach"
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)


class Sink(Protocol):
    def record(self, skip: Skip) -> None: ...


# Replaced, never mutated: the wrapper reads it without the lock.
_sinks: tuple[Sink, ...] = ()
_lock = threading.RLock()
_attached: weakref.WeakSet[BaseDatabaseWrapper] = weakref.WeakSet()
_models_by_table: dict[str, tuple[type[Model], ...]] = {}
_through_models: frozenset[type[Model]] = frozenset()
_expected: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "signal_skips_expected", default=None
)


def start(sink: Sink) -> None:
    """Send every skip to ``sink`` from now on; the first sink puts the wrapper in place."""
    global _sinks
    with _lock:
        if not _sinks:
            _learn_models()
            connection_created.connect(_on_connection_created, dispatch_uid=_UID, weak=False)
            for connection in connections.all(initialized_only=True):
                _attach(connection)
        _sinks = (*_sinks, sink)


def stop(sink: Sink) -> None:
    """No more skips to ``sink``; the last one takes the wrapper off every connection."""
    global _sinks
    with _lock:
        _sinks = tuple(s for s in _sinks if s is not sink)
        if _sinks:
            return
        connection_created.disconnect(dispatch_uid=_UID)
        for connection in list(_attached):
            # Another thread's list: remove() takes ours only, wherever it stands.
            if _audited_execute in connection.execute_wrappers:
                connection.execute_wrappers.remove(_audited_execute)
        _attached.clear()


def active() -> bool:
    return bool(_sinks)


class audit_signal_skips(ContextDecorator):
    """Collect the writes that skipped receivers, in every thread, while the block runs.

    ::

        with audit_signal_skips() as report:
            import_users()
        for site in report.sites():
            print(site.model, site.operation, site.site, site.receiver_names)

    As a decorator, each call is audited and the latest report is
    ``decorator.report``; ``report=`` collects into a report of one's own.
    With ``fail=True`` the block raises
    :class:`SignalSkipsFound` when it made a skip that was not expected.
    """

    def __init__(self, *, fail: bool = False, report: AuditReport | None = None) -> None:
        self.fail = fail
        self._given = report
        self.report = report or AuditReport()

    def __enter__(self) -> AuditReport:
        self.report = self._given or AuditReport()
        start(self.report)
        return self.report

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stop(self.report)
        if self.fail and exc is None and self.report.unexpected:
            raise SignalSkipsFound(self.report)


class SignalSkipsFound(AssertionError):
    """Writes skipped receivers where none was expected; ``.report`` holds them."""

    def __init__(self, report: AuditReport) -> None:
        self.report = report
        lines = [skip.line() for skip in report.unexpected]
        super().__init__(f"{len(lines)} write(s) skipped receivers:\n" + "\n".join(lines))


class signal_skips_expected(ContextDecorator):
    """Declare the set-based writes in this block intentional: reported as expected, with why.

    ::

        with signal_skips_expected("import: profiles are backfilled afterwards"):
            User.objects.bulk_create(users)

    It holds for this thread or task (a context variable): a thread the block
    starts must enter it too, or run in a copy of this context.
    """

    def __init__(self, reason: str) -> None:
        if not reason.strip():
            raise ValueError("signal_skips_expected() needs the reason the skips are intended.")
        self.reason = reason
        self._tokens: list[contextvars.Token[str | None]] = []

    def __enter__(self) -> None:
        self._tokens.append(_expected.set(self.reason))

    def __exit__(self, *exc: object) -> None:
        _expected.reset(self._tokens.pop())


def report_write(
    *, model: type[Model], write: Write, rows: int | None, using: str, operation: str
) -> None:
    """Report a write the execute wrapper cannot see (a COPY), as if it had seen it."""
    if not _sinks:
        return
    _check(
        model_writes=[(model, {write})],
        rows=rows,
        using=using,
        statement=operation,
        frame=sys._getframe(1),
        operation=operation,
    )


# -- the wrapper --


def _audited_execute(
    execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    result = execute(sql, params, many, context)
    if not _sinks or not isinstance(sql, str):
        return result
    targets = written_tables(sql)
    if targets:
        model_writes = _model_writes(targets)
        if model_writes:
            connection = context["connection"]
            _check(
                model_writes=model_writes,
                rows=_rows(context["cursor"], connection, sql),
                using=connection.alias,
                statement=sql,
                frame=sys._getframe(1),
                operation=None,
            )
    return result


def _rows(cursor: Any, connection: BaseDatabaseWrapper, sql: str) -> int | None:
    """The rows the statement wrote; None when the driver cannot say yet."""
    rowcount = getattr(cursor, "rowcount", -1)
    if rowcount is None or rowcount < 0:
        return None
    if rowcount == 0 and connection.vendor == "sqlite" and _RETURNING.search(sql):
        # sqlite3 counts a RETURNING statement's rows only once they are fetched.
        return None
    return int(rowcount)


def _model_writes(targets: Iterable[Target]) -> list[tuple[type[Model], set[Write]]]:
    writes: dict[type[Model], set[Write]] = {}
    for target in targets:
        for model in _models_by_table.get(target.table.lower(), ()):
            writes.setdefault(model, set()).add(target.write)
    return list(writes.items())


def _check(
    *,
    model_writes: list[tuple[type[Model], set[Write]]],
    rows: int | None,
    using: str,
    statement: str,
    frame: FrameType,
    operation: str | None,
) -> None:
    if rows == 0:
        return  # no row written: no receiver would have run
    for model, writes in model_writes:
        needed = _needed(model, writes)
        if not needed:
            continue
        missing, found_operation, site = paths.walk(frame, set(needed))
        if not missing:
            continue
        skip = Skip(
            model=model._meta.label,
            operation=operation or found_operation or "raw SQL",
            write=_main_write(writes).value,
            rows=rows,
            receivers=tuple(sorted({needed[key] for key in missing})),
            site=site,
            database=using,
            statement=statement[:200],
            expected=_expected.get(),
        )
        for sink in _sinks:
            sink.record(skip)


def _needed(model: type[Model], writes: set[Write]) -> dict[tuple[str, int], SkippedReceiver]:
    """The receivers a write of this kind would have run through Django's paths, by key."""
    pairs: tuple[tuple[str, Any], ...] = ()
    if writes & {Write.INSERT, Write.UPDATE}:
        pairs += paths.SAVE_SIGNALS
    if Write.DELETE in writes:
        pairs += paths.DELETE_SIGNALS
    if model in _through_models and writes & {Write.INSERT, Write.DELETE}:
        pairs += paths.M2M_SIGNALS
    return {
        (name, id(receiver)): SkippedReceiver(dotted_name(receiver), name)
        for name, signal in pairs
        for receiver in live_receivers(signal, model)
    }


def _main_write(writes: set[Write]) -> Write:
    return next(w for w in Write if w in writes)


def _learn_models() -> None:
    global _models_by_table, _through_models
    by_table: dict[str, list[type[Model]]] = {}
    through: set[type[Model]] = set()
    for model in apps.get_models(include_auto_created=True):
        if model._meta.proxy:
            continue
        by_table.setdefault(model._meta.db_table.lower(), []).append(model)
        # A db_table of 'schema"."table' (a known Django idiom) is written as "table".
        by_table.setdefault(model._meta.db_table.rsplit('"."', 1)[-1].lower(), []).append(model)
        for m2m in model._meta.local_many_to_many:
            if m2m.remote_field.through is not None:
                through.add(m2m.remote_field.through)
    _models_by_table = {table: tuple(dict.fromkeys(models)) for table, models in by_table.items()}
    _through_models = frozenset(through)


def _attach(connection: BaseDatabaseWrapper) -> None:
    if _audited_execute not in connection.execute_wrappers:
        # First, not last: execute_wrapper() blocks pop() the last entry when they end.
        connection.execute_wrappers.insert(0, _audited_execute)
        _attached.add(connection)


def _on_connection_created(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    _attach(connection)
