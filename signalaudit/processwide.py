"""``SIGNAL_AUDIT=warn|error``: the detector on for the whole process, as warnings.

Each skip becomes a :class:`~signalaudit.report.SignalSkipWarning` attributed
to its call site, so Python shows the line that made it and its ordinary
filters apply (once per line by default). ``error`` adds a filter that turns
the warning into an exception, raised right after the statement ran: inside a
transaction it rolls the write back; in autocommit the row stays written.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from signalaudit import detector
from signalaudit.report import SignalSkipWarning, Skip

MODES = ("off", "warn", "error")


class WarningSink:
    """Turns each skip into a SignalSkipWarning at its call site."""

    def __init__(self) -> None:
        self.registry: dict[Any, Any] = {}

    def record(self, skip: Skip) -> None:
        message = SignalSkipWarning(skip.line())
        if skip.site is None:
            warnings.warn(message, stacklevel=2)
            return
        warnings.warn_explicit(
            message,
            SignalSkipWarning,
            skip.site.filename,
            skip.site.lineno,
            registry=self.registry,
        )


_sink: WarningSink | None = None


def mode_from(setting: object, environ: Mapping[str, str] = os.environ) -> str:
    """The SIGNAL_AUDIT setting, else the environment variable, checked; "off" when unset."""
    value = setting if setting not in (None, "") else environ.get("SIGNAL_AUDIT", "")
    mode = str(value).strip().lower() or "off"
    if mode not in MODES:
        raise ImproperlyConfigured(
            f"SIGNAL_AUDIT is {value!r}; it must be one of {', '.join(MODES)} (or unset)."
        )
    return mode


def enable(mode: str) -> None:
    """Switch the process-wide mode on (``warn``, ``error``) or off, once for the process."""
    global _sink
    if mode == "error":
        warnings.filterwarnings("error", category=SignalSkipWarning)
    if mode in ("warn", "error") and _sink is None:
        _sink = WarningSink()
        detector.start(_sink)
    elif mode == "off" and _sink is not None:
        detector.stop(_sink)
        _sink = None
