"""The options of a backfill (``backfill_profiles``, ``welcome_mails sync``), declared once.

:func:`backfill_options` puts them all on a command, worded for what it creates;
:func:`parse_shard` reads ``--shard K/N`` and :func:`aware_datetime` a date or
date-time (a naive one is UTC).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import click
from django.core.management.base import CommandError
from django.db import DatabaseError

from commands.exitcodes import ExitCode
from commands.options import (
    F,
    batch_size_option,
    format_option,
    if_locked_option,
    jobs_option,
    max_seconds_option,
    no_lock_option,
    refuse_together,
    wait_option,
)
from profiles.sharding import WHOLE_TABLE, Shard, shard_from

# The largest integer every backend binds (SQLite's and PostgreSQL's bigint).
MAX_BOUND = 2**63 - 1


def parse_shard(ctx: click.Context, param: click.Parameter, value: str | None) -> Shard:
    if value is None:
        return WHOLE_TABLE
    match = re.fullmatch(r"(\d+)/(\d+)", value.strip())
    if not match:
        raise click.BadParameter(f"{value!r} is not a shard; use K/N, e.g. 2/4.")
    try:
        return shard_from(int(match[1]), int(match[2]))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: {exc}.") from None


def aware_datetime(value: str) -> datetime:
    """An ISO date (its midnight) or date-time; without an offset it is UTC.
    ValueError (click's BadParameter in a callback) when it is neither."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a date or date-time; use ISO 8601, e.g. 2024-05-01 "
            "or 2024-05-01T12:00:00+02:00 (without an offset: UTC)."
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def datetime_callback(
    ctx: click.Context, param: click.Parameter, value: str | tuple[str, ...] | None
) -> datetime | tuple[datetime, ...] | None:
    """A callback that turns an option's ISO value(s) into aware date-times (exit 2 if not)."""
    if value is None:
        return None
    try:
        if isinstance(value, tuple):
            return tuple(aware_datetime(item) for item in value)
        return aware_datetime(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def backfill_options(
    *, rows: str, a_row: str, run: str, statements: str = "one statement"
) -> Callable[[F], F]:
    """Every option of a backfill, in the order ``--help`` lists them, worded for ``rows``
    ("profiles"), ``a_row`` ("a profile") and ``run`` ("backfill"); a batch is
    ``statements`` in one short transaction."""
    options = [
        batch_size_option(
            default=None,
            help=f"Users per batch; each batch is {statements} in one short transaction. "
            "Default: 100000 on SQLite (one writer, cheap commits), 10000 elsewhere.",
        ),
        click.option(
            "--limit",
            type=click.IntRange(min=1, max=MAX_BOUND),
            default=None,
            help=f"Stop after creating this many {rows}.",
        ),
        click.option("--dry-run", is_flag=True, help=f"Count the {rows} that would be created."),
        click.option(
            "--check",
            is_flag=True,
            help=f"Create nothing; exit 1 if any user (of the shard, with --shard) lacks "
            f"{a_row}, else 0 (for monitoring). Counts under the run's lock (the shard's, "
            "with --shard), so never while that run is half-way: --wait and --no-lock apply; "
            "a lock still held exits 75.",
        ),
        max_seconds_option(
            help="Stop after the batch in flight once this many seconds have passed; "
            "the next run resumes."
        ),
        click.option(
            "--shard",
            metavar="K/N",
            callback=parse_shard,
            help="Work on shard K of N (users with pk % N == K-1; integer pks only), under "
            f"its own lock, so N processes share one {run}.",
        ),
        wait_option(),
        if_locked_option(),
        jobs_option(
            help="Batches to run at once, each on its own database connection: the work is "
            "the database server's, so two keep two of its cores busy; --jobs 1 is the "
            "gentlest. SQLite has one writer and always runs one; so does --limit, to stop "
            "at exactly N."
        ),
        no_lock_option(
            help="Run without the lock (correctness never depends on it); --wait and "
            "--if-locked then mean nothing."
        ),
        format_option(help="json: one object with the figures."),
    ]

    def decorator(func: F) -> F:
        for option in reversed(options):  # the first listed is the outermost
            func = option(func)
        return func

    return decorator


# What --check answers without writing, so these mean nothing beside it; --dry-run
# takes every option of a run (it previews that very command line; --limit caps its count).
CHECK_IGNORES = ("limit", "batch_size", "jobs", "max_seconds")


def refuse_conflicts(*, check_ignores: tuple[str, ...] = CHECK_IGNORES) -> None:
    """Exit 2, one line, for options given together that cannot both mean something:
    ``--check`` with ``--dry-run``, ``--if-locked`` or one of ``check_ignores``, and ``--no-lock``
    with ``--wait`` or ``--if-locked``. Call it first in the command."""
    refuse_together(
        "check",
        ["dry_run"],
        why="--check counts for monitoring and --dry-run previews a run; pass one",
    )
    refuse_together("check", check_ignores, why="--check writes nothing; leave it out")
    # Skipping would make a monitoring check exit 0, having counted nothing, whenever a
    # run is busy.
    refuse_together(
        "check",
        ["if_locked"],
        why="a check never skips; it waits for the lock (--wait), then exits 75 if still held",
    )
    refuse_no_lock_conflicts()


def refuse_no_lock_conflicts() -> None:
    refuse_together(
        "no_lock",
        ["wait", "if_locked"],
        why="without the lock there is nothing to wait for or to skip",
    )


def check_epilog(*, a_row: str, command: str) -> str:
    """What a backfill's own ``--check`` answers, for its ``--help`` epilog (the bridge
    adds the exit codes after it)."""
    return (
        f"With --check it creates nothing and exits 0 when every user (of the shard, with "
        f"--shard) has {a_row}, or 1 with one line saying how many lack one and to run "
        f"'manage.py {command}'; it counts under the run's lock (the shard's, with "
        "--shard), so never while that run is half-way (--wait)."
    )


def run_label(command: str, *, check: bool, dry_run: bool, shard: Shard) -> str:
    """The ``command`` label of a backfill's --metrics-file series: a check, a dry run and
    each shard are series of their own (``backfill_profiles --check --shard 1/4``), so two
    files never carry one series (node_exporter refuses that) and a check's exit 1 never
    reads as the run's outcome."""
    flags = [flag for flag, on in (("--check", check), ("--dry-run", dry_run)) if on]
    if shard.count > 1:
        flags.append(f"--shard {shard}")
    return " ".join([command, *flags])


@contextlib.contextmanager
def recorded_if_lock_held(record: Callable[[], None]) -> Iterator[None]:
    """Around :func:`commands.options.run_locked`: ``record()`` (what is left to do, for
    the --metrics-file) also when the run exits 75 because the lock stayed held, so the
    figure does not vanish from the file while a run is stuck; then the error goes on.
    Not after a signal that ended the wait: on MySQL it can leave the connection out of
    sync mid-GET_LOCK, and a count then turns exit 143 into an error."""
    try:
        yield
    except CommandError as exc:
        if exc.returncode == ExitCode.TEMPFAIL:
            with contextlib.suppress(DatabaseError):  # the lock's line says more
                record()
        raise
