"""What the detector found: each write that skipped receivers, and the report that collects them."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field


class SignalSkipWarning(RuntimeWarning):
    """A write skipped receivers of its model (``SIGNAL_AUDIT=warn``); ``error`` raises it.

    Its own class, so an ordinary warnings filter turns it into an error or
    silences it, whatever the filters for DeprecationWarning say:
    ``warnings.filterwarnings("error", category=SignalSkipWarning)``, or
    pytest's ``filterwarnings = error::signalaudit.SignalSkipWarning``. (Not
    ``python -W``: Python reads it before it can import this package.)
    """


def rows_text(rows: int | None) -> str:
    """``"12 row(s)"``, or ``"? row(s)"`` where the driver did not say."""
    return "? row(s)" if rows is None else f"{rows} row(s)"


@dataclass(frozen=True)
class CallSite:
    """The first frame outside Django, the standard library and the detector."""

    filename: str
    lineno: int
    function: str

    @property
    def path(self) -> str:
        """The file relative to the working directory when it is below it."""
        try:
            relative = os.path.relpath(self.filename)
        except ValueError:  # another drive
            return self.filename
        return self.filename if relative.startswith("..") else relative

    def __str__(self) -> str:
        return f"{self.path}:{self.lineno}"


@dataclass(frozen=True, order=True)
class SkippedReceiver:
    """A receiver that did not run, by its dotted name, and the signal it listens to."""

    name: str
    signal: str

    def __str__(self) -> str:
        return f"{self.name} ({self.signal})"


@dataclass(frozen=True)
class Skip:
    """One statement (or one COPY) that wrote rows of ``model`` without its signals."""

    model: str  # label, e.g. "auth.User"
    operation: str  # as the user names it: "bulk_create", "QuerySet.update", "raw SQL", "COPY"
    write: str  # "insert", "update" or "delete"
    rows: int | None  # None: the driver did not say
    receivers: tuple[SkippedReceiver, ...]
    site: CallSite | None  # None: no frame outside Django (a thread sync_to_async started)
    database: str
    statement: str  # the SQL, cut to 200 characters
    expected: str | None = None  # the reason given to signal_skips_expected()

    def line(self) -> str:
        """One line, as a warning or a failed test says it."""
        rows = rows_text(self.rows)
        names = ", ".join(sorted({r.name for r in self.receivers}))
        where = str(self.site) if self.site else "an unknown line"
        return f"{self.model} {self.operation} ({rows}) at {where} skipped {names}"


@dataclass(frozen=True)
class SiteSummary:
    """The skips of one call site, model and operation, added up."""

    model: str
    operation: str
    site: CallSite | None
    statements: int
    rows: int | None  # None: at least one statement's count is unknown
    receivers: tuple[SkippedReceiver, ...]
    expected: str | None
    # The statements added up, in the order they happened.
    skips: tuple[Skip, ...] = field(default=(), repr=False, compare=False)

    @property
    def receiver_names(self) -> tuple[str, ...]:
        return tuple(sorted({r.name for r in self.receivers}))


@dataclass
class AuditReport:
    """The skips seen while an audit was active, in the order they happened.

    Filled from every thread of the process, so appends take a lock.
    """

    skips: list[Skip] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, skip: Skip) -> None:
        with self._lock:
            self.skips.append(skip)

    @property
    def unexpected(self) -> list[Skip]:
        return [s for s in self.skips if s.expected is None]

    @property
    def expected(self) -> list[Skip]:
        return [s for s in self.skips if s.expected is not None]

    def sites(self) -> list[SiteSummary]:
        """One summary per (model, operation, call site, expectation), first seen first."""
        grouped: dict[tuple[object, ...], list[Skip]] = {}
        for skip in self.skips:
            key = (skip.model, skip.operation, skip.site, skip.expected)
            grouped.setdefault(key, []).append(skip)
        summaries = []
        for (model, operation, site, expected), skips in grouped.items():
            counts = [s.rows for s in skips]
            summaries.append(
                SiteSummary(
                    model=str(model),
                    operation=str(operation),
                    site=site if isinstance(site, CallSite) else None,
                    statements=len(skips),
                    rows=None if None in counts else sum(c for c in counts if c is not None),
                    receivers=tuple(sorted({r for s in skips for r in s.receivers})),
                    expected=expected if isinstance(expected, str) else None,
                    skips=tuple(skips),
                )
            )
        return summaries
