"""Lengths of time on the command line: ``--for 1h30m`` read in, ``1d 1h`` written out.

A duration is one or more ``<number><unit>`` parts, units ``s``, ``m``, ``h``
and ``d``, without spaces (``90s``, ``30m``, ``2h``, ``1d``, ``1h30m``), so it
needs no quoting in a shell or a crontab. It is read while click parses the
command line (:func:`duration_callback`), before any database is touched; shown, it is
its two largest units (:func:`format_duration`), which is as precise as a
person reading "time left" needs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import click
from django.utils import timezone

# Largest first: the order format_duration shows them in.
UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
EXAMPLES = "90s, 30m, 2h, 1d, 1h30m"

_PART = re.compile(rf"(\d+)([{''.join(UNITS)}])")
_DURATION = re.compile(rf"({_PART.pattern})+")


class DurationError(ValueError):
    """Text that is not a duration, or one that is 0s; the message says what to type."""


class DurationTooLong(DurationError):
    """A duration longer than the longest allowed."""


def parse_duration(text: str, *, longest: timedelta, too_long: str | None = None) -> timedelta:
    """``"1h30m"`` -> 90 minutes; above 0s and at most ``longest``, else :class:`DurationError`.

    ``too_long`` is what a duration past ``longest`` is longer than, and what to
    do instead, as its error says it; by default ``longest`` itself ("36500d.").
    The text is echoed cut to 40 characters.
    """
    cleaned = text.strip().lower()
    if not _DURATION.fullmatch(cleaned):
        raise DurationError(f"{text!r} is not a duration; use e.g. {EXAMPLES}.")
    limit = int(longest.total_seconds())
    seconds = 0
    for number, unit in _PART.findall(cleaned):
        digits = number.lstrip("0") or "0"
        # Past the limit either way; and int() refuses strings of over 4300 digits.
        if len(digits) > len(str(limit)):
            seconds = limit + 1
            break
        seconds += int(digits) * UNITS[unit]
    if seconds <= 0:
        raise DurationError("the duration must be longer than 0s.")
    if seconds > limit:
        shown = repr(text) if len(text) <= 40 else repr(text[:37] + "...")
        raise DurationTooLong(f"{shown} is longer than {too_long or format_duration(limit) + '.'}")
    return timedelta(seconds=seconds)


Callback = Callable[[click.Context, click.Parameter, Any], "timedelta | None"]


def duration_callback(*, longest: timedelta, too_long: str | None = None) -> Callback:
    """A click option's callback: its text read as a duration up to ``longest``
    (:func:`parse_duration`, which says what ``too_long`` is).

    None (the option left out) and a ``timedelta``
    (``call_command(..., duration=timedelta(...))``) pass through.
    """

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> timedelta | None:
        if value is None or isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value), longest=longest, too_long=too_long)
        except DurationError as exc:
            raise click.BadParameter(str(exc)) from exc

    return callback


def format_duration(seconds: int) -> str:
    """90061 -> '1d 1h', 3660 -> '1h 1m', 59 -> '59s': the two largest units."""
    parts: list[str] = []
    for unit, size in UNITS.items():
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])


def format_time_left(until: datetime, *, now: datetime | None = None) -> str:
    """The time from ``now`` (the current time) to ``until``, rounded up; '0s' once past."""
    left = (until - (now or timezone.now())).total_seconds()
    return format_duration(max(math.ceil(left), 0))
