"""A run's batches written on several connections at once, committed in their order.

Why: on one connection, Python generates and encodes a batch while the
server idles, then waits while the server inserts it, updates the indexes
and commits; the wall time is the sum of the two. With two streams (a thread
and a connection each, batch k on stream k mod n) one batch's server work
overlaps the generation and COPY of the next, on a core that is free.

What stays as on one connection:

- The users: one generator, in the calling thread, makes every batch in turn.
- Order. Batch k+1 commits only after batch k has: each batch, its rows in,
  waits for its turn (:class:`CommitOrder`) before it commits. The committed
  batches are therefore always a prefix of the run's sequence of users, which
  is what a resume after a kill relies on (it skips as many users as the run
  has committed).
- One transaction per batch: ``write`` is one :func:`dbtools.batches.run_batch`.
- A stop (read by each batch at its turn) or a failing batch rolls back that
  batch and every later one in flight; the earlier ones still commit. Every
  outcome reaches the caller in batch order, once every stream is idle or
  while the next ones work.
- The calling context (``muted()`` receivers, ``signal_skips_expected()``):
  each batch runs in a copy of it. At the end each stream's Django
  connections are closed and its thread is joined, whatever happened.
"""

from __future__ import annotations

import contextvars
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import TypeVar

from django.db import connections

T = TypeVar("T")
Batch = TypeVar("Batch")

THREAD_NAME_PREFIX = "seed-stream"


class TurnLost(Exception):
    """An earlier batch failed or was stopped: this one must not commit (it rolls back)."""


class CommitOrder:
    """Whose turn it is to commit: batch 0, then 1, ...; a lost batch ends all later turns."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._next = 0
        self._lost: int | None = None  # the first batch that will not commit

    def wait_turn(self, index: int) -> None:
        """Return once batches 0 to ``index - 1`` have committed; TurnLost if one never will."""
        with self._changed:
            self._changed.wait_for(lambda: self._next == index or self._is_lost(index))
            if self._is_lost(index):
                raise TurnLost

    def committed(self, index: int) -> None:
        with self._changed:
            self._next = index + 1
            self._changed.notify_all()

    def lose(self, index: int) -> None:
        """Batch ``index`` will not commit: neither will any later one still waiting."""
        with self._changed:
            if self._lost is None or index < self._lost:
                self._lost = index
            self._changed.notify_all()

    def _is_lost(self, index: int) -> bool:
        return self._lost is not None and index >= self._lost


def write_in_streams(
    batches: Iterable[Batch],
    write: Callable[[int, Batch, CommitOrder], T],
    *,
    streams: int,
    proceed: Callable[[], bool],
    on_outcome: Callable[[Batch, T | BaseException], bool],
    on_interrupt: Callable[[], None],
) -> None:
    """Each batch to ``write(index, batch, order)`` on stream ``index % streams``, and
    ``on_outcome(batch, result or exception)`` for each batch handed out, in batch order.

    ``write`` runs the batch's one transaction; with its rows in and before its
    commit it calls ``order.wait_turn(index)``; it returns once committed.
    Batches are drawn from ``batches`` (in this thread) while ``proceed()`` and
    ``on_outcome()`` return True, each stream holding at most one: at most
    ``streams`` batches are in flight and one more generated. A KeyboardInterrupt
    here calls ``on_interrupt()`` (which asks ``write`` to stop), and the
    batches in flight are still waited for and reported.
    """
    order = CommitOrder()
    in_flight: deque[tuple[Batch, Future[T]]] = deque()
    with _streams(streams) as executors:
        try:
            try:
                for index, batch in enumerate(batches):
                    # Generated while the streams work; handed to the first to be free.
                    if len(in_flight) == streams and not on_outcome(*_oldest(in_flight)):
                        break
                    if not proceed():
                        break
                    context = contextvars.copy_context()
                    future = executors[index % streams].submit(
                        context.run, _write_in_turn, write, index, batch, order
                    )
                    in_flight.append((batch, future))
            except KeyboardInterrupt:
                on_interrupt()
            while in_flight:
                on_outcome(*_oldest(in_flight))
        except BaseException:
            order.lose(0)  # an error of the caller's: whatever has not committed yet rolls back
            raise


def _oldest(in_flight: deque[tuple[Batch, Future[T]]]) -> tuple[Batch, T | BaseException]:
    batch, future = in_flight.popleft()
    exception = future.exception()
    return batch, (exception if exception is not None else future.result())


def _write_in_turn(
    write: Callable[[int, Batch, CommitOrder], T], index: int, batch: Batch, order: CommitOrder
) -> T:
    try:
        result = write(index, batch, order)
    except BaseException:
        order.lose(index)
        raise
    order.committed(index)
    return result


def _close_connections() -> None:
    connections.close_all()  # this thread's own


@contextmanager
def _streams(count: int) -> Iterator[list[ThreadPoolExecutor]]:
    """``count`` single-thread executors; at the end each closes its thread's
    connections and is joined."""
    with ExitStack() as stack:
        executors = []
        for _ in range(count):
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME_PREFIX)
            # Callbacks run last in, first out: the close is queued, then the thread joined.
            stack.callback(executor.shutdown, wait=True)
            stack.callback(executor.submit, _close_connections)
            executors.append(executor)
        yield executors
