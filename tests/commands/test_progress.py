"""The progress bar: drawn only on a terminal at verbosity 1 and up, and it follows a total
that changes on the way."""

from __future__ import annotations

import io
from contextlib import ExitStack

from commands.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_follows_a_total_that_shrinks_and_ends_full():
    stream = Terminal()
    with ExitStack() as stack:
        advance = Progress(stream, "Purging", stack)
        advance(10, 80)
        advance(30, 80)
        assert "37%" in stream.getvalue().rsplit("\r", 1)[-1]
        advance(30, 30)  # the rest was left alone: the bar is full, not stuck at 37%
    assert "100%" in stream.getvalue().rsplit("\r", 1)[-1]


def test_a_disabled_bar_draws_nothing():
    with ExitStack() as stack:
        Progress(None, "Purging", stack)(5, 10)
