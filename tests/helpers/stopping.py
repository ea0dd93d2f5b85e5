"""Stop requests that a test scripts: stop at the n-th time a service asks."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from dbtools.stopping import StopRequest


class StopAtCheck(StopRequest):
    """Requests a stop by ``signum`` the ``n``-th time the service reads it (1: at once).

    ``on_check`` runs at every read, before the answer: a test records what the
    database holds at each batch boundary with it.
    """

    def __init__(
        self, n: int, signum: int = signal.SIGTERM, on_check: Callable[[], None] | None = None
    ) -> None:
        super().__init__()
        self.checks = 0
        self._n, self._signum, self._on_check = n, signum, on_check

    def __call__(self) -> bool:
        self.checks += 1
        if self._on_check:
            self._on_check()
        if self.checks >= self._n:
            self.request(self._signum)
        return super().__call__()


class StopAfterSeconds(StopRequest):
    """Requests a stop once ``seconds`` have passed since it was made."""

    def __init__(self, seconds: float, signum: int = signal.SIGTERM) -> None:
        super().__init__()
        self._deadline = time.monotonic() + seconds
        self._signum = signum

    def __call__(self) -> bool:
        if time.monotonic() >= self._deadline:
            self.request(self._signum)
        return super().__call__()
