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
import sys
import threading
import weakref
from collections.abc import Callable, Iterable
from contextlib import ContextDecorator
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any, Protocol

from django.apps import apps
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.db.models import Model
from django.dispatch import Signal

from signalaudit import paths
from signalaudit.report import AuditReport, Skip, SkippedReceiver
from signalaudit.statements import Target, Write, parse
from switches.introspection import dotted_name, live_receivers

_UID = "signalaudit.detector.attach"


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
            _plans.clear()
            connection_created.connect(_on_connection_created, dispatch_uid=_UID, weak=False)
        _sinks = (*_sinks, sink)
        for connection in connections.all(initialized_only=True):
            _attach(connection)


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
    """Report a write the execute wrapper cannot see (a COPY), as if it had seen it.

    The call site is the caller's line (or the first frame outside Django and
    the detector above it); a no-op while no audit is active.
    """
    if not _sinks:
        return
    watched = _Watched(
        model=model, writes=frozenset({write}), signals=_signals_for(model, {write}), alone=True
    )
    needed = _needed(watched)
    if needed and rows != 0:
        _check(watched, needed, rows, using, operation, sys._getframe(1), operation)


# -- the wrapper --


@dataclass(frozen=True)
class _Watched:
    """A model whose table a statement writes, and what its receivers would have needed."""

    model: type[Model]
    writes: frozenset[Write]
    signals: tuple[tuple[str, Signal], ...]
    # The statement's row count is this model's alone; else it is shared or not this model's.
    alone: bool
    # A count of 0 means this model got no row (its table's target is counted).
    counted: bool = True


@dataclass(frozen=True)
class _Plan:
    watched: tuple[_Watched, ...]
    # On SQLite the rows are counted in ways of their own (_rowcount).
    sqlite: bool
    returning: bool
    values_rows: int | None
    # sqlite3 gives no rowcount for a statement that starts with WITH: total_changes does.
    count_changes: bool
    # The driver's count is not the rows written (MySQL counts an upserted row twice).
    count_inexact: bool


_UNREAD: Any = object()  # the cursor's rowcount, not read yet


# vendor -> SQL text -> what it writes of watched models (None: nothing); cleared by start().
_plans: dict[str, dict[str, _Plan | None]] = {}
_PLANS_SIZE = 4096


def _audited_execute(
    execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    # The hot path: per statement a dict lookup; the stack only for writes with receivers.
    if not _sinks or sql.__class__ is not str:
        return execute(sql, params, many, context)
    connection = context["connection"]
    try:
        plan = _plans[connection.vendor][sql]
    except KeyError:
        plan = _plan(sql, connection.vendor)
    if plan is None:
        return execute(sql, params, many, context)
    if plan.count_changes:
        raw = connection.connection
        before = raw.total_changes
        result = execute(sql, params, many, context)
        changes = raw.total_changes - before
    else:
        result = execute(sql, params, many, context)
        changes = None
    rowcount = _UNREAD
    for watched in plan.watched:
        needed = _needed(watched)
        if not needed:
            continue
        if rowcount is _UNREAD:
            rowcount = _rowcount(plan, context["cursor"], changes)
        rows = _rows(watched, plan, rowcount)
        if rows != 0:
            frame = sys._getframe(1)
            _check(watched, needed, rows, connection.alias, sql, frame, None)
    return result


def _rowcount(plan: _Plan, cursor: Any, changes: int | None) -> int | None:
    """The rows the statement wrote, as the driver counts them; None when it cannot say.

    On SQLite, sqlite3 counts a RETURNING statement's rows only as they are
    fetched (and SQLite its total_changes only once it completed): there, the
    rows of the VALUES list it writes each of, else unknown. A statement
    sqlite3 does not take for DML (one that starts with WITH) has no rowcount;
    the change in total_changes (``changes``) has its rows.
    """
    if plan.sqlite and plan.returning:
        return plan.values_rows
    rowcount = getattr(cursor, "rowcount", -1)
    if rowcount is None or rowcount < 0:
        return changes
    return int(rowcount)


def _rows(watched: _Watched, plan: _Plan, rowcount: int | None) -> int | None:
    """The rows of ``watched``'s table the statement wrote: 0 for none, None when unknown."""
    if rowcount == 0:
        return 0 if watched.counted else None
    if plan.count_inexact or not watched.alone:
        return None
    return rowcount


def _plan(sql: str, vendor: str) -> _Plan | None:
    statement = parse(sql, dialect=vendor)
    plan = None
    if statement.targets:
        counted_tables = {t.table.lower() for t in statement.targets if t.counted}
        by_model: dict[type[Model], list[Target]] = {}
        for target in statement.targets:
            for model in _models_by_table.get(target.table.lower(), ()):
                by_model.setdefault(model, []).append(target)
        watched = tuple(
            _Watched(
                model=model,
                writes=frozenset(t.write for t in targets),
                signals=signals,
                alone=len(counted_tables) == 1 and all(t.counted for t in targets),
                counted=all(t.counted for t in targets),
            )
            for model, targets in by_model.items()
            if (signals := _signals_for(model, {t.write for t in targets}))
        )
        if watched:
            plan = _Plan(
                watched=watched,
                sqlite=vendor == "sqlite",
                returning=statement.returning,
                count_changes=vendor == "sqlite" and statement.verb == "with",
                values_rows=statement.values_rows,
                count_inexact=vendor == "mysql" and statement.upsert,
            )
    plans = _plans.setdefault(vendor, {})
    if len(plans) >= _PLANS_SIZE:
        plans.clear()  # as the statement cache: a bound, not an LRU
    plans[sql] = plan
    return plan


def _needed(watched: _Watched) -> paths.Sent:
    """The receivers a write of this kind would have run, by (signal, id)."""
    return {
        (name, id(receiver))
        for name, signal in watched.signals
        for receiver in live_receivers(signal, watched.model)
    }


def _check(
    watched: _Watched,
    needed: paths.Sent,
    rows: int | None,
    using: str,
    statement: str,
    frame: FrameType,
    operation: str | None,
) -> None:
    """Record a skip when no path on the stack sent all of ``needed``."""
    model = watched.model
    missing = paths.unsent(frame, model, needed)
    if not missing:
        return
    found_operation, site = paths.call_site(frame)
    names = {
        (name, id(receiver)): SkippedReceiver(dotted_name(receiver), name)
        for name, signal in watched.signals
        for receiver in live_receivers(signal, model)
    }
    skip = Skip(
        model=model._meta.label,
        operation=operation or found_operation or "raw SQL",
        write=_main_write(watched.writes).value,
        rows=rows,
        receivers=tuple(sorted({names[key] for key in missing if key in names})),
        site=site,
        database=using,
        statement=statement[:200],
        expected=_expected.get(),
    )
    for sink in _sinks:
        sink.record(skip)


def _signals_for(model: type[Model], writes: set[Write]) -> tuple[tuple[str, Signal], ...]:
    """The signals Django's paths send for a write of these kinds to ``model``'s table."""
    pairs: tuple[tuple[str, Signal], ...] = ()
    if writes & {Write.INSERT, Write.UPDATE}:
        pairs += paths.SAVE_SIGNALS
    if Write.DELETE in writes:
        pairs += paths.DELETE_SIGNALS
    if model in _through_models and writes & {Write.INSERT, Write.DELETE}:
        pairs += paths.M2M_SIGNALS
    return pairs


def _main_write(writes: Iterable[Write]) -> Write:
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
    # Under the lock, and only while active: a thread connecting as the last audit
    # ends must not leave the wrapper behind.
    with _lock:
        if _sinks:
            _attach(connection)
