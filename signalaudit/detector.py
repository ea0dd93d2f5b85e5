"""The detector: an execute wrapper on every connection, while at least one audit is active.

Django's documented ``execute_wrappers`` see every statement that goes through
its cursor wrapper. While active, the wrapper is put on every connection this
thread has, on every connection it was ever put on (a ``sync_to_async`` worker
thread outlives an audit, and so does its connection), and on every connection
any thread opens (``connection_created``), so ``--jobs`` threads are seen
too. A statement that writes rows of a model with receivers for that kind of
write is checked against the stack
(:mod:`signalaudit.paths`): the receivers no signal-sending path ran are
reported, with the call site. When the last audit ends, the wrapper and the
receiver are removed again: inactive, the detector costs nothing at all.

Blind spots, by construction: writes that do not go through Django's cursor
wrapper (psycopg's ``copy()`` and other raw DB-API cursors, other processes,
triggers, ``dbshell``) and connections other threads opened before the first
audit began. A write path of one's own reports itself with :func:`report_write`, as
``seed_users --via bulk`` does for its COPY.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import sys
import threading
import weakref
from collections.abc import Callable, Iterable
from contextlib import ContextDecorator
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any, Protocol, TypeVar, cast

from django.apps import apps
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.db.models import Model
from django.dispatch import Signal

from signalaudit import paths, statements
from signalaudit.report import AuditReport, Skip, SkippedReceiver
from signalaudit.statements import Target, Write, parse
from switches.introspection import dotted_name, live_receivers

_UID = "signalaudit.detector.attach"


class Sink(Protocol):
    def record(self, skip: Skip) -> None: ...


# Replaced, never mutated: the wrapper reads it without the lock.
_sinks: tuple[Sink, ...] = ()
_lock = threading.RLock()
# Every connection the wrapper was ever put on; never cleared, so that start() finds
# again the connections of threads that outlive an audit (sync_to_async's worker).
_attached: weakref.WeakSet[BaseDatabaseWrapper] = weakref.WeakSet()
_models_by_table: dict[str, tuple[type[Model], ...]] = {}
_through_models: frozenset[type[Model]] = frozenset()
# The reasons of the signal_skips_expected() blocks this thread or task is in, innermost
# last: a value of its own per context, so no token is shared between threads.
_expected: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "signal_skips_expected", default=()
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
        for connection in (*_attached, *connections.all(initialized_only=True)):
            _attach(connection)


def stop(sink: Sink) -> None:
    """No more skips to ``sink``; the last one takes the wrapper off every connection."""
    global _sinks
    with _lock:
        # One entry: the same report may be the sink of two nested audits.
        at = next((i for i in reversed(range(len(_sinks))) if _sinks[i] is sink), None)
        if at is not None:
            _sinks = _sinks[:at] + _sinks[at + 1 :]
        if _sinks:
            return
        connection_created.disconnect(dispatch_uid=_UID)
        for connection in list(_attached):
            # Another thread's list: remove() takes ours only, wherever it stands.
            if _audited_execute in connection.execute_wrappers:
                connection.execute_wrappers.remove(_audited_execute)
        # Audits are rare and their SQL texts many: none is kept once they are over.
        _plans.clear()
        statements.clear_cache()


def active() -> bool:
    return bool(_sinks)


_Function = TypeVar("_Function", bound=Callable[..., Any])


class _FreshContextDecorator(ContextDecorator):
    """A decorator that enters a new instance per call, and awaits a coroutine inside it.

    ContextDecorator enters the decorating instance itself on every call, so a
    recursive call or a second thread would share its state; and around an
    ``async def`` it would be entered while the coroutine is created, not run.
    """

    def _recreate_cm(self) -> Any:
        raise NotImplementedError

    def __call__(self, func: _Function) -> _Function:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def awaited(*args: Any, **kwargs: Any) -> Any:
                with self._recreate_cm():
                    return await func(*args, **kwargs)

            return cast("_Function", awaited)
        return super().__call__(func)


class audit_signal_skips(_FreshContextDecorator):
    """Collect the writes that skipped receivers, in every thread, while the block runs.

    ::

        with audit_signal_skips() as report:
            import_users()
        for site in report.sites():
            print(site.model, site.operation, site.site, site.receiver_names)

    As a decorator, each call is audited on its own (recursive calls, threads
    and ``async def`` functions too) and the report of the call that started
    latest is ``decorator.report``; ``report=`` collects every call into a
    report of one's own.
    With ``fail=True`` the block raises
    :class:`SignalSkipsFound` when it made a skip that was not expected.
    """

    def __init__(self, *, fail: bool = False, report: AuditReport | None = None) -> None:
        self.fail = fail
        self._given = report
        self.report = report or AuditReport()
        self._decorator: audit_signal_skips | None = None  # for a call's own instance

    def _recreate_cm(self) -> audit_signal_skips:
        call = audit_signal_skips(fail=self.fail, report=self._given)
        call._decorator = self
        return call

    def __enter__(self) -> AuditReport:
        self.report = self._given or AuditReport()
        if self._decorator is not None:
            self._decorator.report = self.report
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


class signal_skips_expected(_FreshContextDecorator):
    """Declare the set-based writes in this block intentional: reported as expected, with why.

    ::

        with signal_skips_expected("import: profiles are backfilled afterwards"):
            User.objects.bulk_create(users)

    It holds for this thread or task (a context variable): a thread the block
    starts must enter it too, or run in a copy of this context. One instance
    may be entered by several threads or tasks at once; as a decorator of an
    ``async def``, it holds while the coroutine runs.
    """

    def __init__(self, reason: str) -> None:
        if not reason.strip():
            raise ValueError("signal_skips_expected() needs the reason the skips are intended.")
        self.reason = reason

    def _recreate_cm(self) -> signal_skips_expected:
        return self  # its state is the context variable's, one per thread or task

    def __enter__(self) -> None:
        _expected.set((*_expected.get(), self.reason))

    def __exit__(self, *exc: object) -> None:
        _expected.set(_expected.get()[:-1])


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
    # sqlite3 gives no rowcount for a statement that starts with WITH: SQLite's changes() does.
    count_changes: bool
    # The driver's count is not the rows written (MySQL counts an upserted row twice).
    count_inexact: bool


_UNREAD: Any = object()  # the cursor's rowcount, not read yet


# vendor -> SQL text -> what it writes of watched models (None: nothing); cleared when the
# first audit starts (the models may have changed) and when the last one ends.
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
    result = execute(sql, params, many, context)
    changes = _sqlite_changes(connection) if plan.count_changes else None
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


def _sqlite_changes(connection: BaseDatabaseWrapper) -> int | None:
    """The rows the statement just completed wrote itself, as SQLite's changes() counts them.

    Not total_changes: it also counts the rows triggers and foreign key actions
    (ON DELETE CASCADE) wrote. changes() is the rows of the last INSERT, UPDATE
    or DELETE that completed (this one: it was not a RETURNING statement, which
    _rowcount counts otherwise), and nothing else. None if it cannot be read.
    """
    try:
        row = connection.connection.execute("SELECT changes()").fetchone()
    except Exception:
        return None
    return int(row[0]) if row else None


def _rowcount(plan: _Plan, cursor: Any, changes: int | None) -> int | None:
    """The rows the statement wrote, as the driver counts them; None when it cannot say.

    On SQLite, sqlite3 counts a RETURNING statement's rows only as they are
    fetched (and SQLite its total_changes only once it completed): there, the
    rows of the VALUES list it writes each of, else unknown. A statement
    sqlite3 does not take for DML (one that starts with WITH) has no rowcount;
    SQLite's changes() (``changes``) has its rows.
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
    """The receivers a write of this kind would have run, by (signal, stable identity)."""
    return paths.receivers_of(watched.model, watched.signals)


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
        (name, paths.receiver_key(receiver)): SkippedReceiver(dotted_name(receiver), name)
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
        expected=expected[-1] if (expected := _expected.get()) else None,
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
