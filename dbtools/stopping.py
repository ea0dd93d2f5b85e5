"""Stop requests: SIGINT and SIGTERM recorded, not raised.

Every long service takes a :class:`StopRequest` as ``stop`` and reads it at a
batch boundary, so no exception ever lands inside a driver call and the batch
in flight either commits whole or rolls back whole. Its result then says that
it stopped (``stopped="signal"``) and by which signal (``stop_signal``).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Literal

# Why a long service stopped before the end: a --limit, a --max-seconds, or a signal.
StopReason = Literal["limit", "max_seconds", "signal"]


class StopRequest:
    """Whether a stop was asked for, and by which signal; ``stop()`` is the question."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.signum is not None

    def request(self, signum: int) -> None:
        """Ask the service to stop at its next batch boundary (the first signal wins)."""
        if self.signum is None:
            self.signum = signum

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.request(signum)


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """A StopRequest that SIGINT and SIGTERM set while the block runs (main thread only:
    Python delivers signals there)."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, stop._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
