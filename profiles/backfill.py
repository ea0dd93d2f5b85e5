"""The backfill: every missing profile, in batches over the users in pk order.

The same machinery creates any row a user has one of: a :class:`Target` names
the model (with a one-to-one ``user``) and the statements of a batch (values,
and optionally a joined-date range). :func:`profiles_backfill` is the entry for
profiles (:data:`PROFILES`); ``welcome_mails sync``
(:mod:`profiles.welcome.sync`) is another target's. One :class:`_Backfill`
holds a run's tally, shared by its threads. The way to a row::

    records_backfill -> _Backfill.run -> _Backfill.work (one thread's loop)
      -> _Backfill._create (one batch) -> dbtools.batches.run_batch (its transaction)
      -> _BatchInsert -> profiles.sql.insert_missing (each statement of the target)

:class:`_Batches` hands out the batches (keyset pagination over the pk);
:func:`run_lock` is the run lock that keeps a second run from doing the same
work (correctness never depends on it); :func:`backfill_lock` is the profiles'.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connections
from django.db.models import Exists, Model, OuterRef, QuerySet
from django.db.models.functions import Mod

from dbtools.batches import BatchAbandoned, run_batch
from dbtools.locks import database_lock
from dbtools.stopping import StopReason, StopRequest
from profiles import sql
from profiles.models import Profile
from profiles.selectors import MissingRecords, users_without_profile
from profiles.services import profile_defaults
from profiles.sharding import WHOLE_TABLE, Shard

# A batch runs first without the conflict clause, which costs where it is not
# needed (PostgreSQL), and reruns with it if another writer made one of its
# rows meanwhile. Either way it leaves its users unlocked (MySQL).
FIRST_TRY = sql.Strategy(conflict_clause=False, user_locks=False)
RERUN = sql.Strategy(conflict_clause=True, user_locks=False)


def default_batch_size(*, using: str) -> int:
    """SQLite has one writer and cheap commits, so fewer, larger batches are faster there."""
    return 100_000 if connections[using].vendor == "sqlite" else 10_000


@dataclass(frozen=True)
class Insert:
    """One statement of a batch: rows with the fields ``values()`` (besides ``user``;
    called once per batch) for the batch's users who joined in ``joined`` (None: all)."""

    values: Callable[[], Mapping[str, object]]
    joined: sql.Joined | None = None


@dataclass(frozen=True)
class Target:
    """What a backfill creates: the missing rows of ``model``, a model with a one-to-one
    ``user``. Each batch runs ``inserts`` in order, in its one transaction (their
    ``joined`` ranges should not overlap: a user's row is made by the first that
    covers it); ``missing(using=, shard=)`` counts the users still without one."""

    model: type[Model]
    inserts: tuple[Insert, ...]
    missing: Callable[..., MissingRecords]


PROFILES = Target(model=Profile, inserts=(Insert(profile_defaults),), missing=users_without_profile)


@dataclass(frozen=True)
class BackfillResult:
    created: int
    batches: int
    seconds: float
    last_pk: Any  # every user up to this pk, in the pk's order, has been covered
    max_pk: Any  # the highest user pk when the run started
    stopped: StopReason | None
    stop_signal: int | None = None  # the signal's number, when one stopped the run
    jobs: int = 1
    # A sharded run's closing count of the users without a row, in its shard
    # and in the table (None for a whole-table run, or one a signal stopped).
    missing: MissingRecords | None = None
    # The rows each of the target's inserts created, in its order (they add up to created).
    created_by_insert: tuple[int, ...] = ()

    @property
    def rows_per_second(self) -> float:
        return self.created / self.seconds if self.seconds > 0 else 0.0

    @property
    def profiles_per_second(self) -> float:
        return self.rows_per_second


def profiles_backfill(
    *,
    using: str,
    batch_size: int,
    shard: Shard = WHOLE_TABLE,
    limit: int | None = None,
    max_seconds: float | None = None,
    stop: StopRequest | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    jobs: int = 1,
) -> BackfillResult:
    """Create every missing profile, walking the users in batches of ``batch_size``.

    Each batch is one short transaction and one statement over the next
    ``batch_size`` users in pk order (see :class:`_Batches`), so memory and
    per-batch cost stay flat and gaps in the pks cost nothing. With ``jobs`` >
    1, that many threads run batches at once, each on its own connection (the
    server, not Python, does the work). It stops after the batches in flight at
    ``limit`` profiles, after ``max_seconds``, or when ``stop`` is requested
    (a signal); a rerun picks up what is left. ``on_batch(done, total)`` gets
    the users covered so far against the users there were at the start. It
    does not send post_save: no welcome mails.
    """
    return records_backfill(
        PROFILES,
        using=using,
        batch_size=batch_size,
        shard=shard,
        limit=limit,
        max_seconds=max_seconds,
        stop=stop,
        on_batch=on_batch,
        jobs=jobs,
    )


def records_backfill(
    target: Target,
    *,
    using: str,
    batch_size: int,
    shard: Shard = WHOLE_TABLE,
    limit: int | None = None,
    max_seconds: float | None = None,
    stop: StopRequest | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    jobs: int = 1,
) -> BackfillResult:
    """Create every missing row of ``target``, as :func:`profiles_backfill` does profiles
    (the same batches, threads, limits and stops); ``limit`` counts the rows of all its
    inserts together."""
    started = time.perf_counter()
    jobs = _jobs(using=using, jobs=jobs, limit=limit)
    with _Batches(
        using=using,
        batch_size=batch_size,
        count_users=on_batch is not None,
        # Another connection sees only committed users: none inside a transaction.
        look_ahead=not connections[using].in_atomic_block,
    ) as walk:
        backfill = _Backfill(
            target,
            using=using,
            walk=walk,
            shard=shard,
            limit=limit,
            deadline=None if max_seconds is None else started + max_seconds,
            stop=stop or StopRequest(),
            on_batch=on_batch,
        )
        backfill.run(jobs=jobs)
    seconds = time.perf_counter() - started
    # What is true of the table, not only of the shard, for the report; not
    # worth a slow count while a signal asks to stop.
    missing = None
    if shard.count > 1 and backfill.stopped != "signal":
        missing = target.missing(using=using, shard=shard)
    return BackfillResult(
        created=sum(backfill.created),
        batches=backfill.batches,
        seconds=seconds,
        last_pk=walk.last_pk,
        max_pk=walk.high,
        stopped=backfill.stopped,
        stop_signal=backfill.stop.signum if backfill.stopped == "signal" else None,
        jobs=jobs,
        missing=missing,
        created_by_insert=tuple(backfill.created),
    )


def _jobs(*, using: str, jobs: int, limit: int | None) -> int:
    """How many batches may run at once. One on SQLite (one writer), under a limit
    (exact only when one batch at a time takes from it) and inside a transaction
    (other connections cannot see its rows)."""
    connection = connections[using]
    if connection.vendor == "sqlite" or limit is not None or connection.in_atomic_block:
        return 1
    return jobs


class _Backfill:
    """One run of ``target``: its threads claim batches from ``walk`` and add up what
    they created (per insert) under ``_tally``; the first batch to end the run says why
    in ``stopped``."""

    def __init__(
        self,
        target: Target,
        *,
        using: str,
        walk: _Batches,
        shard: Shard,
        limit: int | None,
        deadline: float | None,
        stop: StopRequest,
        on_batch: Callable[[int, int], None] | None,
    ) -> None:
        self.target = target
        self.using, self.walk, self.shard, self.limit = using, walk, shard, limit
        self.deadline, self.stop, self.on_batch = deadline, stop, on_batch
        self.created = [0] * len(target.inserts)
        self.batches = 0
        self.stopped: StopReason | None = None
        self._tally = threading.Lock()

    def run(self, *, jobs: int) -> None:
        """:meth:`work` in this thread, or in ``jobs`` threads with connections of their
        own; once every thread has finished its batch in flight, re-raise an error one
        of them met."""
        if jobs == 1:
            self.work()
            return
        try:
            with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="backfill") as pool:
                futures = [pool.submit(self._work_in_own_connection) for _ in range(jobs)]
        except BaseException:  # e.g. Ctrl-C in a caller without a signal handler
            self.walk.stop()
            raise
        for future in futures:
            future.result()

    def work(self) -> None:
        """Claim and create batches until none is left or the run is to stop."""
        while self.stopped is None and (batch := self.walk.claim()) is not None:
            try:
                created = self._create(batch)
            except BatchAbandoned:  # a signal while the batch waited to be retried
                with self._tally:
                    self.stopped = self.stopped or "signal"
                return
            self._finish(batch, created)

    def _create(self, batch: _Batch) -> tuple[int, ...]:
        """One batch in one transaction; rerun with the conflict clause if a concurrent
        writer made one of its rows (or deleted one of its users) meanwhile."""
        remaining = None if self.limit is None else self.limit - sum(self.created)
        insert = _BatchInsert(
            target=self.target,
            using=self.using,
            batch=batch,
            shard=self.shard,
            limit=remaining,
            strategy=FIRST_TRY,
        )
        try:
            return run_batch(insert, using=self.using, stop=self.stop)
        except IntegrityError:  # rolled back whole; nothing of it was written
            return run_batch(replace(insert, strategy=RERUN), using=self.using, stop=self.stop)

    def _finish(self, batch: _Batch, created: tuple[int, ...]) -> None:
        with self._tally:
            self.created = [total + more for total, more in zip(self.created, created, strict=True)]
            self.batches += 1
            self.walk.finish(batch)
            if self.on_batch:
                self.on_batch(*self.walk.progress())
            if self.stopped is None:  # else another thread's batch already ended the run
                self.stopped = self._stop_reason()
                if self.stopped == "limit":
                    # The limit took the first users of the batch, not all of it; a
                    # limited run has one job, so this batch is the last one finished.
                    self.walk.covered_only_up_to(self._covered_up_to(batch))

    def _covered_up_to(self, batch: _Batch) -> Any:
        """The last pk of ``batch`` up to which every user (of the shard) has a row: the
        user before the first one still without, or the batch's previous end (None)."""
        users = get_user_model()._base_manager.db_manager(self.using).filter(pk__lte=batch.last_pk)
        if batch.after_pk is not None:
            users = users.filter(pk__gt=batch.after_pk)
        if self.shard.count > 1:
            users = users.alias(residue=Mod("pk", self.shard.count)).filter(
                residue=self.shard.number - 1
            )
        pks = users.values_list("pk", flat=True)
        has_row = Exists(self.target.model._base_manager.filter(user=OuterRef("pk")))
        first_without = pks.filter(~has_row).order_by("pk").first()
        if first_without is None:
            return batch.last_pk
        before = pks.filter(pk__lt=first_without).order_by("-pk").first()
        return batch.after_pk if before is None else before

    def _stop_reason(self) -> StopReason | None:
        if self.limit is not None and sum(self.created) >= self.limit:
            return "limit"
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            return "max_seconds"
        if self.stop():
            return "signal"
        return None

    def _work_in_own_connection(self) -> None:
        try:
            self.work()
        except BaseException:
            self.walk.stop()  # the other threads claim no further batch
            raise
        finally:
            connections.close_all()  # this thread's connections only


@dataclass(frozen=True)
class _BatchInsert:
    """One batch's statements (one per insert of the target), in the shape run_batch
    runs: called without arguments; the rows each created."""

    target: Target
    using: str
    batch: _Batch
    shard: Shard
    limit: int | None
    strategy: sql.Strategy

    def __call__(self) -> tuple[int, ...]:
        created: list[int] = []
        for insert in self.target.inserts:
            remaining = None if self.limit is None else self.limit - sum(created)
            if remaining is not None and remaining <= 0:
                created.append(0)
                continue
            created.append(
                sql.insert_missing(
                    connections[self.using],
                    values=insert.values(),
                    after_pk=self.batch.after_pk,
                    last_pk=self.batch.last_pk,
                    shard=self.shard,
                    limit=remaining,
                    strategy=self.strategy,
                    model=self.target.model,
                    joined=insert.joined,
                )
            )
        return tuple(created)


@dataclass
class _Batch:
    number: int  # in the order handed out
    after_pk: Any  # the previous batch's last pk; None for the first batch
    last_pk: Any
    size: int | None  # its users when handed out; None: whatever was left
    finished: bool = False


class _Batches:
    """Hands out the batches of a backfill in pk order, to one thread or several.

    A batch is the next ``batch_size`` users after the previous batch's last
    pk, in the order the database sorts the pk (keyset pagination): one lookup
    served by the pk's index, ``ORDER BY pk LIMIT 2 OFFSET batch_size - 1``,
    finds its last pk (the second row says whether more follow), and the batch
    is ``previous < pk <= last``. No pk arithmetic and no MIN or MAX, so an
    integer of any size, a UUID or a string all work; gaps cost nothing; and
    with no space between consecutive ranges, a user inserted into one (a UUID
    lands anywhere) before its batch runs is covered. Pks are compared only by
    the database, never in Python, whose order may not be a collation's.

    The lookup steps through the batch's index entries, one more pass over the
    table: about 6% of the insert's time on SQLite. With ``look_ahead``, a
    thread of its own, on a connection of its own, looks up the next batch
    while the current one inserts, so that pass costs no time.

    ``last_pk`` is the last pk of the longest run of finished batches from the
    start: what a progress report may claim. Use it as a context manager: on
    the way out, it waits for a lookup in flight and closes its connection.
    """

    def __init__(self, *, using: str, batch_size: int, count_users: bool, look_ahead: bool) -> None:
        self._using = using
        users = get_user_model()._base_manager.db_manager(using)
        self._pks = users.order_by("pk").values_list("pk", flat=True)
        self.high = users.order_by("-pk").values_list("pk", flat=True).first()
        self.last_pk: Any = None
        # Progress needs a total; only then is it worth a count.
        self._total = users.count() if count_users else 0
        self._covered = 0
        # Larger is the same batch (no table has 2**62 rows), and its OFFSET could
        # not be bound.
        self._batch_size = min(batch_size, 2**62)
        self._after: Any = None
        self._more = self.high is not None
        self._handed_out = 0
        self._final: int | None = None  # the number of the batch that reaches ``high``
        self._next_to_finish = 0
        self._unfinished: dict[int, _Batch] = {}
        self._lock = threading.Lock()
        self._ahead: Future[list[Any]] | None = None
        self._looker = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill-lookup")
            if look_ahead
            else None
        )

    def __enter__(self) -> _Batches:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        if self._looker is not None:
            self._looker.submit(connections.close_all)  # the lookup thread's connection
            self._looker.shutdown(wait=True)

    def claim(self) -> _Batch | None:
        with self._lock:
            if not self._more:
                return None
            found = self._ahead.result() if self._ahead else self._lookup(self._after)
            self._ahead = None
            batch = _Batch(
                number=self._handed_out,
                after_pk=self._after,
                last_pk=found[0] if found else self.high,
                size=self._batch_size if found else None,
            )
            self._more = len(found) == 2
            if not self._more:
                self._final = batch.number
            self._after = batch.last_pk
            self._handed_out += 1
            self._unfinished[batch.number] = batch
            if self._more and self._looker is not None:
                self._ahead = self._looker.submit(self._lookup, self._after)
            return batch

    def _lookup(self, after: Any) -> list[Any]:
        """The pk ``batch_size`` users after ``after`` and, if there is one, the pk after it."""
        with sql.in_pk_order(connections[self._using]):
            return list(self.lookup_query(after))

    def lookup_query(self, after: Any) -> QuerySet[Any, Any]:
        following = self._pks.filter(pk__lte=self.high)
        if after is not None:
            following = following.filter(pk__gt=after)
        return following[self._batch_size - 1 : self._batch_size + 1]

    def finish(self, batch: _Batch) -> None:
        with self._lock:
            batch.finished = True
            while (oldest := self._unfinished.get(self._next_to_finish)) and oldest.finished:
                del self._unfinished[oldest.number]
                self._next_to_finish += 1
                self.last_pk = oldest.last_pk
                self._covered += oldest.size or 0
                if oldest.number == self._final:
                    self._covered = self._total

    def covered_only_up_to(self, pk: Any) -> None:
        """The last batch finished was cut short: its users are covered up to ``pk``."""
        with self._lock:
            self.last_pk = pk

    def progress(self) -> tuple[int, int]:
        """(users covered from the start, users at the start), once a batch has finished;
        users inserted or deleted meanwhile can make the first overshoot: it is capped."""
        return min(self._covered, self._total), self._total

    def stop(self) -> None:
        """Hand out no further batch."""
        with self._lock:
            self._more = False


def backfill_lock(
    *, using: str, shard: Shard = WHOLE_TABLE, wait: float = 0, enabled: bool = True
) -> AbstractContextManager[None]:
    """The run lock of a backfill of ``using``: one run per database, or per shard.

    Entered, it holds the lock, waiting up to ``wait`` seconds for another run's
    (then dbtools.locks.LockHeld); not ``enabled``, it takes no lock at all.
    Named ``backfill_profiles`` (``backfill_profiles:K/N`` for a shard); see
    :func:`run_lock`.
    """
    return run_lock("backfill_profiles", using=using, shard=shard, wait=wait, enabled=enabled)


def run_lock(
    name: str, *, using: str, shard: Shard = WHOLE_TABLE, wait: float = 0, enabled: bool = True
) -> AbstractContextManager[None]:
    """The run lock ``name`` (``name:K/N`` for a shard) of a run over ``using``'s users.

    Entered, it holds the lock, waiting up to ``wait`` seconds for another run's
    (then dbtools.locks.LockHeld); not ``enabled``, it takes no lock at all.
    Taken on ``settings.BACKFILL_LOCK_DATABASE`` when that is set
    (LOCK_DATABASE_URL: a direct connection where a pooler would not hold it),
    else on ``using``.
    """
    if not enabled:
        return nullcontext()
    if shard.count > 1:
        name = f"{name}:{shard}"
    alias = settings.BACKFILL_LOCK_DATABASE or using
    return database_lock(name, using=alias, wait=wait)
