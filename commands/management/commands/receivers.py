"""manage.py receivers: list signal receivers and switch them off and on, for every process."""

from __future__ import annotations

import getpass
from datetime import timedelta

import click
from django.utils import timezone

from commands.clickbridge import ClickCommand, django_group, subcommand
from commands.durations import EXAMPLES, duration_callback
from commands.exitcodes import ON_A_DATABASE
from commands.options import format_option
from commands.reports.receivers import write_changes, write_receivers
from dbtools.errors import UsageError
from switches.selectors import receivers_list
from switches.services import (
    MAX_DURATION,
    receiver_switches_all_on,
    receiver_switches_off,
    receiver_switches_on,
)

group = django_group(
    "receivers",
    exit_codes=ON_A_DATABASE,
    help="""List signal receivers; switch them off and on for every process.

    A switch is stored in the database (--database), so every process that uses
    it obeys: one started later from its first signal, one already running
    within RECEIVER_SWITCHES_REFRESH_SECONDS. Names are dotted paths, as 'list'
    shows them, e.g. profiles.receivers.send_welcome_email. See docs/receivers.md.
    """,
)

SWITCH_DURATION = duration_callback(
    longest=MAX_DURATION,
    too_long=f"the longest switch, {MAX_DURATION.days}d (100 years: a later expiry does not "
    "fit every database); leave --for out to switch off until 'receivers on'.",
)


def names_or_all(ctx: click.Context, param: click.Parameter, all_: bool) -> bool:
    """--all of 'receivers on', refused while parsing (before the database is checked)
    unless exactly one of it and the names is given; NAME... is eager, so read first."""
    if all_ == bool(ctx.params.get("names")):
        raise UsageError(
            "give receiver names or --all, not both and not neither; "
            "'manage.py receivers list' shows the names."
        )
    return all_


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "unknown"


@subcommand(group, name="list", database=True, exit_codes=ON_A_DATABASE)
@format_option(help="Output format; json is one object on one line.")
def list_(cmd: ClickCommand, *, database: str, output_format: str) -> None:
    """Every receiver of the model, request and auth signals, and its switch.

    STATE is 'on', 'off' (switched off in the database: since when, by whom,
    time left and why) or 'muted' (by muted() in this process). Receivers that
    are not switchable are listed too.
    """
    write_receivers(
        cmd, receivers_list(using=database), database=database, output_format=output_format
    )


@subcommand(group, name="off", database=True, exit_codes=ON_A_DATABASE)
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("--reason", default="", help="Why, shown by 'list' (e.g. 'bulk import #42').")
@click.option("--by", default=_os_user, show_default="the OS user", help="Who, shown by 'list'.")
@click.option(
    "--for",
    "duration",
    metavar="DURATION",
    default=None,
    callback=SWITCH_DURATION,
    help=f"Switch back on by itself after this long: {EXAMPLES}; at most "
    f"{MAX_DURATION.days}d. Without it, the receiver stays off until 'receivers on'.",
)
@format_option(help="json: one object on one line: what was switched, by whom, until when, why.")
def off(
    cmd: ClickCommand,
    *,
    database: str,
    names: tuple[str, ...],
    reason: str,
    by: str,
    duration: timedelta | None,
    output_format: str,
) -> None:
    """Switch receivers off, in every process that uses the database.

    Switching off a receiver that is already off is not an error: it stays off
    since the same time, with the reason, --by and expiry given now. An
    unknown name changes nothing and exits 2.
    """
    until = timezone.now() + duration if duration is not None else None
    write_changes(
        cmd,
        receiver_switches_off(names=names, reason=reason, by=by, until=until, using=database),
        output_format=output_format,
        database=database,
        switched="off",
        by=by,
        reason=reason,
    )


@subcommand(group, name="on", database=True, exit_codes=ON_A_DATABASE)
@click.argument("names", nargs=-1, metavar="[NAME]...", is_eager=True)
@click.option(
    "--all", "all_", is_flag=True, callback=names_or_all, help="Switch every receiver back on."
)
@format_option(help="json: one object on one line: what was switched on, and what was off.")
def on(
    cmd: ClickCommand, *, database: str, names: tuple[str, ...], all_: bool, output_format: str
) -> None:
    """Switch receivers back on, in every process that uses the database.

    Switching on a receiver that is on is not an error. An unknown name
    changes nothing and exits 2. With --all, only the receivers that were off
    are listed.
    """
    if all_:
        changes = receiver_switches_all_on(using=database)
    else:
        changes = receiver_switches_on(names=names, using=database)
    write_changes(
        cmd,
        changes,
        output_format=output_format,
        database=database,
        switched="on",
        empty="No receiver was switched off.",
        all=all_,
    )


Command = group.django_command_class
