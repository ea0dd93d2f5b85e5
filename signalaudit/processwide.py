"""``SIGNAL_AUDIT=warn|error``: the detector on for the whole process.

With ``signalaudit`` in INSTALLED_APPS, its ``ready()`` reads the
``SIGNAL_AUDIT`` setting, else the environment variable of that name:

- ``warn``: each skip is a :class:`~signalaudit.report.SignalSkipWarning`
  attributed to its call site (the file and line of the write), so Python
  shows that line and its ordinary filters apply: once per line and message
  by default; ``warnings.filterwarnings("error", category=SignalSkipWarning)``
  (or pytest's ``-W error::signalaudit.SignalSkipWarning``) raises it. Not
  ``python -W``/``PYTHONWARNINGS`` with that class: Python reads them before
  site-packages can be imported and ignores the option (bpo-22543); there,
  ``-W "error:auth.User:RuntimeWarning"`` (its base class, and the message
  starts with the model's label) does it.
- ``error``: each skip raises the SignalSkipWarning, whatever the filters
  say, right after the statement ran: inside a transaction (every batch of
  this project's commands) the write rolls back with it; in autocommit the
  row stays written.
- ``off``, empty or unset: nothing is installed, so nothing costs.

Any other value stops start-up with ImproperlyConfigured naming the variable
(``manage.py``: one line, exit 78).
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
    """Turns each skip into a SignalSkipWarning at its call site; ``error``: raises it."""

    def __init__(self, *, raise_skips: bool) -> None:
        self.raise_skips = raise_skips
        # warn_explicit's record of what it has shown, as a module's __warningregistry__.
        self.registry: dict[Any, Any] = {}

    def record(self, skip: Skip) -> None:
        message = SignalSkipWarning(skip.line())
        if self.raise_skips:
            raise message
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
        # As cliproject.env does: the variable named, never its value.
        raise ImproperlyConfigured("SIGNAL_AUDIT must be off, warn or error (or unset).")
    return mode


def current_mode() -> str:
    if _sink is None:
        return "off"
    return "error" if _sink.raise_skips else "warn"


def enable(mode: str) -> None:
    """Switch the process-wide mode to ``warn``, ``error`` or ``off``."""
    global _sink
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}.")
    if mode == current_mode():
        return
    if _sink is not None:
        detector.stop(_sink)
        _sink = None
    if mode != "off":
        _sink = WarningSink(raise_skips=mode == "error")
        detector.start(_sink)
