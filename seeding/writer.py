"""Writes one seed run's batches, a transaction each: the loop ``seed_users`` runs.

A stop request (SIGINT/SIGTERM, recorded by the command's handler) is read once
per batch, with the batch's rows in and before it commits, so the batch in
flight rolls back whole; the batches committed before it stay.

A bulk run on PostgreSQL writes on two streams by default (:mod:`seeding.streams`):
one batch's COPY and generation overlap the server's work on the one before,
and the batches still commit one after the other, in order. Elsewhere, and for
``--via save`` (whose receivers and mail delivery belong to the calling
thread), one stream: the batches in the calling thread, on its connection.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from django.db import connections

from dbtools.batches import BatchAbandoned, run_batch
from dbtools.stopping import StopRequest
from profiles.receivers import WELCOME_MAIL_RECEIVER
from seeding.generator import FakeUser
from seeding.inserts import BatchCounts, bulk_insert_batch, save_batch
from seeding.models import SeedRun
from seeding.streams import CommitOrder, TurnLost, write_in_streams
from seeding.userfields import UserColumns
from switches.state import holding_off

Via = Literal["save", "bulk"]


class _Stopped(Exception):
    """Raised inside a batch's transaction, to roll it back."""


# What ends a run early without an error: a stop request, or (on several
# streams) an earlier batch that did not commit.
_ENDED = (_Stopped, BatchAbandoned, TurnLost)


def default_streams(*, via: Via, using: str) -> int:
    """Two for a bulk run on PostgreSQL, where a second connection overlaps the server's
    work with the client's; one elsewhere."""
    return 2 if via == "bulk" and connections[using].vendor == "postgresql" else 1


class BatchWriter:
    """Writes one run's batches, a transaction each; a stop rolls back the batch in flight.

    ``streams``: connections writing at once (None: :func:`default_streams`).
    More than one only for a bulk run on PostgreSQL, outside a transaction of the
    caller's (which other connections can neither see into nor roll back with);
    otherwise one. SQLite has one writer at a time; on MariaDB, InnoDB's next-key
    locks (the set-based SeededUser insert reads the user table's unique index)
    make a batch that waits for its turn block the one before it until a lock
    wait timeout.
    """

    def __init__(
        self,
        run: SeedRun,
        *,
        via: Via,
        columns: UserColumns,
        using: str,
        stop: StopRequest,
        streams: int | None = None,
    ) -> None:
        self._insert: Callable[[Sequence[FakeUser]], BatchCounts]
        if via == "save":
            self._insert = functools.partial(
                save_batch, columns=columns, run_pk=run.pk, using=using
            )
        else:
            layout = columns.bulk_layout(connections[using])
            # Muted for this run, or switched off: the users are to get no mail, and a
            # later 'welcome_mails sync' would otherwise make their records pending.
            # Read here, in the calling thread, where a muted() block holds.
            welcome = holding_off(WELCOME_MAIL_RECEIVER, using=using)
            self._insert = functools.partial(
                bulk_insert_batch,
                columns=columns,
                layout=layout,
                run_pk=run.pk,
                using=using,
                welcome_suppressed=welcome.describe() if welcome is not None else None,
            )
        self._requested = run.requested
        self._using = using
        self._stop = stop
        self.streams = _usable_streams(
            default_streams(via=via, using=using) if streams is None else streams,
            via=via,
            using=using,
        )

    def write_all(
        self,
        batches: Iterable[Sequence[FakeUser]],
        *,
        done: int,
        on_batch: Callable[[int, int], None] | None,
    ) -> BatchCounts:
        """Commit ``batches`` in turn, until the last or a stop; the records their users got.

        ``done``: the users the run had before, for ``on_batch(done, requested)``.
        An error of a batch is raised once no batch is in flight any more, with
        the batches before it committed and none after it.
        """
        if self.streams > 1:
            return self._write_in_streams(batches, done=done, on_batch=on_batch)
        counts = BatchCounts()
        try:
            for batch in batches:
                counts += self._write(batch)
                done += len(batch)
                if on_batch:
                    on_batch(done, self._requested)
        except (_Stopped, BatchAbandoned):
            pass  # the stop request says which signal
        except KeyboardInterrupt:
            self._stop.request(signal.SIGINT)
        return counts

    def _write_in_streams(
        self,
        batches: Iterable[Sequence[FakeUser]],
        *,
        done: int,
        on_batch: Callable[[int, int], None] | None,
    ) -> BatchCounts:
        counts = BatchCounts()
        failure: BaseException | None = None
        ended = False

        def on_outcome(batch: Sequence[FakeUser], outcome: BatchCounts | BaseException) -> bool:
            nonlocal counts, done, failure, ended
            if ended:  # an earlier batch stopped or failed: this one rolled back
                return False
            if isinstance(outcome, BaseException):
                ended = True
                if not isinstance(outcome, _ENDED):
                    failure = outcome
                return False
            counts += outcome
            done += len(batch)
            if on_batch:
                on_batch(done, self._requested)
            return True

        write_in_streams(
            batches,
            self._write_in_turn,
            streams=self.streams,
            proceed=lambda: not self._stop(),
            on_outcome=on_outcome,
            on_interrupt=functools.partial(self._stop.request, signal.SIGINT),
        )
        if failure is not None:
            # The same exception one stream raises; its traceback is the stream's.
            raise failure
        return counts

    def _write(self, batch: Sequence[FakeUser]) -> BatchCounts:
        """Commit ``batch`` and record it as the run's; return the records its users got.

        Raises _Stopped (or BatchAbandoned, while a timed-out batch waits to be
        retried) with nothing of the batch written when a stop was asked for.
        """
        return run_batch(
            functools.partial(self._insert_unless_stopped, batch),
            using=self._using,
            # Fake users: a batch lost to a server crash is recreated by a rerun.
            durable=False,
            stop=self._stop,
        )

    def _insert_unless_stopped(self, batch: Sequence[FakeUser]) -> BatchCounts:
        counts = self._insert(batch)
        # The batch's one stop check: its rows are in, its transaction not yet committed.
        if self._stop():
            raise _Stopped
        return counts

    def _write_in_turn(
        self, index: int, batch: Sequence[FakeUser], order: CommitOrder
    ) -> BatchCounts:
        """As _write, on a stream: the batch commits only after the one before it."""
        return run_batch(
            functools.partial(self._insert_in_turn, index, batch, order),
            using=self._using,
            durable=False,
            stop=self._stop,
        )

    def _insert_in_turn(
        self, index: int, batch: Sequence[FakeUser], order: CommitOrder
    ) -> BatchCounts:
        counts = self._insert(batch)
        order.wait_turn(index)  # TurnLost, and a rollback, when an earlier batch did not commit
        if self._stop():
            raise _Stopped
        return counts


def _usable_streams(streams: int, *, via: Via, using: str) -> int:
    connection = connections[using]
    if streams < 1:
        raise ValueError(f"streams must be at least 1, not {streams}.")
    if via == "save" or connection.vendor != "postgresql" or connection.in_atomic_block:
        return 1
    return streams
