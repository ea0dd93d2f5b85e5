"""manage.py receivers: list signal receivers and switch them off and on, for every process."""

from __future__ import annotations

import getpass
import json
import math
import re
from datetime import datetime, timedelta
from typing import Any

import click
from django.core.management.base import CommandError
from django.utils import timezone

from commands.clickbridge import ClickCommand, django_group, subcommand
from commands.dbready import database_ready
from commands.exitcodes import ExitCode
from commands.options import format_option
from switches.registry import ReceiverNameError
from switches.selectors import ReceiverState, receivers_list
from switches.services import (
    MAX_DURATION,
    SwitchChange,
    receiver_switches_all_on,
    receiver_switches_off,
    receiver_switches_on,
)
from switches.state import refresh_seconds

group = django_group(
    "receivers",
    help="""List signal receivers; switch them off and on for every process.

    A switch is stored in the database (--database), so every process that uses
    it obeys: one started later from its first signal, one already running
    within RECEIVER_SWITCHES_REFRESH_SECONDS. Names are dotted paths, as 'list'
    shows them, e.g. profiles.receivers.send_welcome_email. See docs/receivers.md.
    """,
)


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration_option(
    ctx: click.Context, param: click.Parameter, value: str | timedelta | None
) -> timedelta | None:
    """--for: a length of time such as 90s, 30m, 2h, 1d or 1h30m, up to MAX_DURATION."""
    if value is None or isinstance(value, timedelta):
        return value
    text = value.strip().lower()
    if not re.fullmatch(r"(\d+[smhd])+", text):
        raise click.BadParameter(f"{value!r} is not a duration; use e.g. 90s, 30m, 2h, 1d, 1h30m.")
    limit = int(MAX_DURATION.total_seconds())
    seconds = 0
    for number, unit in re.findall(r"(\d+)([smhd])", text):
        digits = number.lstrip("0") or "0"
        # Past the limit either way; and int() refuses strings of over 4300 digits.
        if len(digits) > len(str(limit)):
            seconds = limit + 1
            break
        seconds += int(digits) * DURATION_UNITS[unit]
    if seconds <= 0:
        raise click.BadParameter("the duration must be longer than 0s.")
    if seconds > limit:
        shown = repr(value) if len(value) <= 40 else repr(value[:37] + "...")
        raise click.BadParameter(
            f"{shown} is longer than the longest switch, {MAX_DURATION.days}d (100 years: a "
            "later expiry does not fit every database); leave --for out to switch off "
            "until 'receivers on'."
        )
    return timedelta(seconds=seconds)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "unknown"


@subcommand(group, name="list", database=True)
@format_option(help="Output format; json is one object on one line.")
def list_(cmd: ClickCommand, *, database: str, output_format: str) -> None:
    """Every receiver of the model, request and auth signals, and its switch.

    STATE is 'on', 'off' (switched off in the database: since when, by whom,
    time left and why) or 'muted' (by muted() in this process). Receivers that
    are not switchable are listed too.
    """
    database_ready(using=database)
    receivers = receivers_list(using=database)
    if output_format == "json":
        cmd.stdout.write(
            json.dumps({"database": database, "receivers": [_as_json(r) for r in receivers]})
        )
        return
    if cmd.verbosity < 1:
        return
    rows = [("RECEIVER", "SIGNAL", "SENDER", "SWITCHABLE", "STATE")]
    rows += [
        (
            r.name,
            r.signal,
            r.sender or "(any)",
            "yes" if r.switchable else "no",
            _state_text(r),
        )
        for r in receivers
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cmd.stdout.write(
            "  ".join([*(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)), row[4]])
        )
    off = sum(r.state == "off" for r in receivers)
    switchable = sum(r.switchable for r in receivers)
    cmd.stdout.write(
        f"{len(receivers)} receiver connection(s), {switchable} switchable, {off} off "
        f"(database {database!r})."
    )


@subcommand(group, name="off", database=True)
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("--reason", default="", help="Why, shown by 'list' (e.g. 'bulk import #42').")
@click.option("--by", default=_os_user, show_default="the OS user", help="Who, shown by 'list'.")
@click.option(
    "--for",
    "duration",
    metavar="DURATION",
    default=None,
    callback=_duration_option,
    help="Switch back on by itself after this long: 90s, 30m, 2h, 1d, 1h30m; at most "
    f"{MAX_DURATION.days}d. Without it, the receiver stays off until 'receivers on'.",
)
def off(
    cmd: ClickCommand,
    *,
    database: str,
    names: tuple[str, ...],
    reason: str,
    by: str,
    duration: timedelta | None,
) -> None:
    """Switch receivers off, in every process that uses the database.

    Switching off a receiver that is already off is not an error: it stays off
    since the same time, with the reason, --by and expiry given now. An
    unknown name changes nothing and exits 2.
    """
    database_ready(using=database)
    until = timezone.now() + duration if duration is not None else None
    try:
        changes = receiver_switches_off(
            names=names, reason=reason, by=by, until=until, using=database
        )
    except (ReceiverNameError, ValueError) as exc:
        raise CommandError(str(exc), returncode=ExitCode.USAGE) from exc
    _report(cmd, changes)


@subcommand(group, name="on", database=True)
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--all", "all_", is_flag=True, help="Switch every receiver back on.")
def on(cmd: ClickCommand, *, database: str, names: tuple[str, ...], all_: bool) -> None:
    """Switch receivers back on, in every process that uses the database.

    Switching on a receiver that is on is not an error. An unknown name
    changes nothing and exits 2.
    """
    if all_ == bool(names):
        raise CommandError(
            "give receiver names or --all, not both and not neither; "
            "'manage.py receivers list' shows the names.",
            returncode=ExitCode.USAGE,
        )
    database_ready(using=database)
    try:
        if all_:
            changes = receiver_switches_all_on(using=database)
        else:
            changes = receiver_switches_on(names=names, using=database)
    except ReceiverNameError as exc:
        raise CommandError(str(exc), returncode=ExitCode.USAGE) from exc
    if all_ and not changes and cmd.verbosity >= 1:
        cmd.stdout.write("No receiver was switched off.")
    _report(cmd, changes)


def _report(cmd: ClickCommand, changes: list[SwitchChange]) -> None:
    if cmd.verbosity < 1:
        return
    for change in changes:
        if change.is_off:
            until = ""
            if change.expires_at is not None:
                until = f" until {_when(change.expires_at)} (in {_left(change.expires_at)})"
            if change.changed:
                cmd.stdout.write(f"Switched off {change.name}{until}.")
            else:
                since = _when(change.switched_off_at) if change.switched_off_at else "?"
                cmd.stdout.write(
                    f"{change.name} is already off (since {since}); "
                    f"reason, by and expiry updated{until}."
                )
        elif change.changed:
            cmd.stdout.write(f"Switched on {change.name}.")
        else:
            cmd.stdout.write(f"{change.name} is already on.")
    if cmd.verbosity >= 2 and any(c.changed for c in changes):
        cmd.stdout.write(
            "Processes started from now on obey at once; running ones within "
            f"{refresh_seconds():g}s (RECEIVER_SWITCHES_REFRESH_SECONDS)."
        )


def _state_text(receiver: ReceiverState) -> str:
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
        text += f", {_duration(receiver.seconds_left)} left"
    if receiver.reason:
        text += f": {receiver.reason}"
    return text


def _as_json(receiver: ReceiverState) -> dict[str, Any]:
    return {
        "name": receiver.name,
        "signal": receiver.signal,
        "sender": receiver.sender,
        "dispatch_uid": receiver.dispatch_uid,
        "async": receiver.is_async,
        "switchable": receiver.switchable,
        "state": receiver.state,
        "switched_off_at": _iso(receiver.switched_off_at),
        "switched_off_by": receiver.switched_off_by or None,
        "reason": receiver.reason or None,
        "expires_at": _iso(receiver.expires_at),
        "seconds_left": receiver.seconds_left,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _when(value: datetime) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")


def _left(value: datetime) -> str:
    return _duration(max(math.ceil((value - timezone.now()).total_seconds()), 0))


def _duration(seconds: int) -> str:
    """90061 -> '1d 1h', 3660 -> '1h 1m', 59 -> '59s': the two largest units."""
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])


Command = group.django_command_class
