"""What ``receivers`` prints: the table of receivers and each switch change, or JSON."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from django.utils import timezone

from commands.clickbridge import ClickCommand
from commands.durations import format_duration, format_time_left
from commands.render import figures, write_json
from switches.selectors import ReceiverState
from switches.services import SwitchChange
from switches.state import refresh_seconds


def write_receivers(
    cmd: ClickCommand, receivers: list[ReceiverState], *, database: str, output_format: str
) -> None:
    if output_format == "json":
        write_json(cmd, {"database": database, "receivers": [_as_json(r) for r in receivers]})
        return
    if cmd.verbosity < 1:
        return
    rows = [("RECEIVER", "SIGNAL", "SENDER", "SWITCHABLE", "STATE")]
    rows += [
        (r.name, r.signal, r.sender or "(any)", "yes" if r.switchable else "no", _state(r))
        for r in receivers
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cmd.stdout.write("  ".join([*map(str.ljust, row[:4], widths), row[4]]))
    off = sum(r.state == "off" for r in receivers)
    switchable = sum(r.switchable for r in receivers)
    cmd.stdout.write(
        f"{len(receivers)} receiver connection(s), {switchable} switchable, {off} off "
        f"(database {database!r})."
    )


def write_changes(
    cmd: ClickCommand,
    changes: list[SwitchChange],
    *,
    output_format: str,
    database: str,
    switched: str,
    empty: str = "",
    by: str = "",
    reason: str = "",
    **asked: Any,
) -> None:
    """What 'off' and 'on' did: a line per receiver, or one JSON object at every verbosity.

    ``switched`` is "off" or "on". Each receiver's JSON has the keys of its
    entry in 'list' (``by`` and ``reason`` are what 'off' stored), with
    ``changed`` and ``was_off``; ``asked`` adds top-level keys (``all`` for 'on').
    ``empty`` is the text line for no change at all.
    """
    if output_format == "json":
        write_json(
            cmd,
            {
                "database": database,
                "switched": switched,
                **asked,
                "receivers": [_change_json(c, by=by, reason=reason) for c in changes],
                "refresh_seconds": refresh_seconds(),
            },
        )
        return
    if cmd.verbosity < 1:
        return
    if not changes and empty:
        cmd.stdout.write(empty)
    for change in changes:
        cmd.stdout.write(_change_text(change))
    if cmd.verbosity >= 2 and any(c.changed for c in changes):
        cmd.stdout.write(
            "Processes started from now on obey at once; running ones within "
            f"{refresh_seconds():g}s (RECEIVER_SWITCHES_REFRESH_SECONDS)."
        )


def _change_json(change: SwitchChange, *, by: str, reason: str) -> dict[str, Any]:
    left = None
    if change.expires_at is not None:
        left = max(math.ceil((change.expires_at - timezone.now()).total_seconds()), 0)
    return figures(
        change,
        "name",
        state="off" if change.is_off else "on",
        changed=change.changed,
        was_off=change.was_off,
        switched_off_at=_iso(change.switched_off_at),
        switched_off_by=(by or None) if change.is_off else None,
        reason=(reason or None) if change.is_off else None,
        expires_at=_iso(change.expires_at),
        seconds_left=left,
    )


def _change_text(change: SwitchChange) -> str:
    if not change.is_off:
        return f"Switched on {change.name}." if change.changed else f"{change.name} is already on."
    until = ""
    if change.expires_at is not None:
        until = f" until {_when(change.expires_at)} (in {format_time_left(change.expires_at)})"
    if change.changed:
        return f"Switched off {change.name}{until}."
    since = _when(change.switched_off_at) if change.switched_off_at else "?"
    return f"{change.name} is already off (since {since}); reason, by and expiry updated{until}."


def _state(receiver: ReceiverState) -> str:
    if receiver.state == "muted":
        return "muted (in this process)"
    if receiver.state != "off":
        return receiver.state
    text = "off"
    if receiver.switched_off_at is not None:
        text += f" since {_when(receiver.switched_off_at)}"
    if receiver.switched_off_by:
        text += f" by {receiver.switched_off_by}"
    if receiver.seconds_left is not None:
        text += f", {format_duration(receiver.seconds_left)} left"
    if receiver.reason:
        text += f": {receiver.reason}"
    return text


def _as_json(r: ReceiverState) -> dict[str, Any]:
    # Datetimes as isoformat() gives them (DjangoJSONEncoder would cut microseconds).
    return figures(
        r,
        "name",
        "signal",
        "sender",
        "dispatch_uid",
        **{"async": r.is_async},
        switchable=r.switchable,
        state=r.state,
        switched_off_at=_iso(r.switched_off_at),
        switched_off_by=r.switched_off_by or None,
        reason=r.reason or None,
        expires_at=_iso(r.expires_at),
        seconds_left=r.seconds_left,
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _when(value: datetime) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")
