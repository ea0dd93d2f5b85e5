"""Writes one seed run's batches, a transaction each: the loop ``seed_users`` runs.

A stop request (SIGINT/SIGTERM, recorded by the command's handler) is read once
per batch, with the batch's rows in and before it commits, so the batch in
flight rolls back whole; the batches committed before it stay.
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
from seeding.userfields import UserColumns
from switches.state import holding_off

Via = Literal["save", "bulk"]


class _Stopped(Exception):
    """Raised inside a batch's transaction, to roll it back."""


class BatchWriter:
    """Writes one run's batches, a transaction each; a stop rolls back the batch in flight."""

    def __init__(
        self, run: SeedRun, *, via: Via, columns: UserColumns, using: str, stop: StopRequest
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

    def write_all(
        self,
        batches: Iterable[Sequence[FakeUser]],
        *,
        done: int,
        on_batch: Callable[[int, int], None] | None,
    ) -> BatchCounts:
        """Commit ``batches`` in turn, until the last or a stop; the records their users got.

        ``done``: the users the run had before, for ``on_batch(done, requested)``.
        """
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
