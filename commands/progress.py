"""A progress bar on stderr, only when it is a terminal and verbosity > 0 (as dumpdata does)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, TextIO, cast

import click

from commands.clickbridge import ClickCommand

if TYPE_CHECKING:
    # click.progressbar() returns this class but click exports no public name for it.
    from click._termui_impl import ProgressBar


class Progress:
    """Called as ``progress(done, total)`` after each batch; draws nothing when disabled."""

    def __init__(self, stream: TextIO | None, label: str, stack: ExitStack) -> None:
        self._stream, self._label, self._stack = stream, label, stack
        self._bar: ProgressBar[int] | None = None

    def __call__(self, done: int, total: int) -> None:
        if self._stream is None:
            return
        if self._bar is None:
            bar = click.progressbar(length=max(total, 1), label=self._label, file=self._stream)
            self._bar = self._stack.enter_context(bar)
        else:
            # A total may change on the way (purge_seeded's shrinks by a run left alone).
            self._bar.length = max(total, 1)
        # Not update(): it draws nothing for a step of 0, as when only the total changed.
        self._bar.make_step(done - self._bar.pos)
        self._bar.render_progress()


@contextmanager
def progress(cmd: ClickCommand, *, label: str) -> Iterator[Progress]:
    # OutputWrapper has no public accessor for the stream it wraps; the bar needs the stream
    # itself to ask isatty() and to draw without the wrapper's line endings.
    stream = cast(TextIO, cmd.stderr._out)
    shown = cmd.verbosity >= 1 and getattr(stream, "isatty", lambda: False)()
    with ExitStack() as stack:
        yield Progress(stream if shown else None, label, stack)
