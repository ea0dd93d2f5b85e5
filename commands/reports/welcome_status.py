"""What ``welcome_mails status`` and ``profiles_status`` print about welcome mails.

Counts only: never an address, a name or a mail body.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from commands.clickbridge import ClickCommand
from commands.durations import format_duration
from commands.render import figures, write_json
from profiles.welcome.selectors import WelcomeMailCounts


def counts_figures(counts: WelcomeMailCounts, *, now: datetime | None = None) -> dict[str, Any]:
    """The counts as JSON figures; the oldest pending record's age in whole seconds."""
    age = counts.oldest_pending_age(now)
    return figures(
        counts,
        "records",
        "pending",
        "sending",
        "sent",
        "suppressed",
        "failed",
        "without_record",
        "oldest_pending_created_at",
        oldest_pending_age_seconds=None if age is None else int(age.total_seconds()),
    )


def counts_line(counts: WelcomeMailCounts, *, now: datetime | None = None) -> str:
    """``Welcome mails: 3 record(s): 1 sent, 2 pending (oldest 5m 2s), ...``: one line."""
    pending = f"{counts.pending} pending"
    age = counts.oldest_pending_age(now)
    if age is not None:
        pending += f" (oldest {format_duration(int(age.total_seconds()))})"
    return (
        f"Welcome mails: {counts.records} record(s): {counts.sent} sent, {pending}, "
        f"{counts.sending} sending, {counts.suppressed} suppressed, {counts.failed} failed; "
        f"{counts.without_record} user(s) without one."
    )


def check_problem(
    counts: WelcomeMailCounts, *, max_age: timedelta, now: datetime | None = None
) -> str | None:
    """What ``status --check`` exits 1 for, in one line; None when all is well.

    A record waiting (pending, or leased to a sender) for longer than
    ``max_age``, or any failed record.
    """
    problems = []
    age = counts.oldest_pending_age(now)
    if age is not None and counts.overdue(max_age, now):
        waited, limit = (format_duration(int(t.total_seconds())) for t in (age, max_age))
        problems.append(
            f"the oldest pending welcome mail has waited {waited}, more than --max-age {limit} "
            "(is 'welcome_mails send' or a task worker running, and the mail server reachable?)"
        )
    if counts.failed:
        problems.append(
            f"{counts.failed} welcome mail(s) failed "
            "('welcome_mails retry' makes them pending again)"
        )
    return "; ".join(problems) or None


def write_status(
    cmd: ClickCommand,
    counts: WelcomeMailCounts,
    *,
    database: str,
    output_format: str,
    max_age: timedelta | None,
    now: datetime | None = None,
) -> None:
    """The status as one JSON object or one line (two with -v 2 and work to do).

    ``max_age``: a ``--check``'s threshold, whose verdict the JSON carries.
    """
    if output_format == "json":
        values: dict[str, Any] = {"database": database, **counts_figures(counts, now=now)}
        if max_age is not None:
            values["max_age_seconds"] = int(max_age.total_seconds())
            values["problem"] = check_problem(counts, max_age=max_age, now=now)
        write_json(cmd, values)
        return
    if cmd.verbosity < 1:
        return
    cmd.stdout.write(counts_line(counts, now=now))
    if cmd.verbosity >= 2:
        if counts.without_record:
            cmd.stdout.write("'manage.py welcome_mails sync' creates the missing records.")
        if counts.waiting:
            cmd.stdout.write("'manage.py welcome_mails send' delivers the pending ones.")
