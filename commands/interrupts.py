"""SIGINT and SIGTERM recorded, not raised: services read the request at a batch boundary,
so no exception ever lands inside a driver call."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from commands.exitcodes import ExitCode


def exit_code_for(signum: int) -> int:
    """130 for SIGINT, 143 for SIGTERM: :meth:`ExitCode.for_signal`."""
    return ExitCode.for_signal(signum)


class StopRequest:
    """Set by SIGINT/SIGTERM; read between batches so the batch in flight finishes whole."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
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
