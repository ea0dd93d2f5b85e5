"""manage.py backfill_profiles: create the profiles that post_save never made."""

from __future__ import annotations

import json
import re
from contextlib import AbstractContextManager, nullcontext

import click
from django.conf import settings
from django.core.management.base import CommandError

from commands.clickbridge import ClickCommand, django_command
from commands.dbready import EX_TEMPFAIL, database_ready
from commands.interrupts import exit_code_for, stop_on_signals
from commands.options import batch_size_option, format_option
from commands.progress import progress
from profiles.locks import LockHeld, database_lock
from profiles.selectors import users_without_profile_count
from profiles.services import (
    WHOLE_TABLE,
    BackfillResult,
    Shard,
    default_batch_size,
    profiles_backfill,
)


def _parse_shard(ctx: click.Context, param: click.Parameter, value: str | None) -> Shard:
    if value is None:
        return WHOLE_TABLE
    match = re.fullmatch(r"(\d+)/(\d+)", value.strip())
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise click.BadParameter(f"{value!r} is not a shard; use K/N with 1 <= K <= N, e.g. 2/4.")
    return Shard(number=int(match[1]), count=int(match[2]))


@django_command(name="backfill_profiles", database=True)
@batch_size_option(
    default=None,
    help="User pks per batch; each batch is one statement in one short transaction. "
    "Default: 100000 on SQLite (one writer, cheap commits), 10000 elsewhere.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Stop after creating this many profiles.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Count the profiles that would be created.")
@click.option(
    "--check",
    is_flag=True,
    help="Create nothing; exit 1 if any user lacks a profile, else 0 (for monitoring).",
)
@click.option(
    "--max-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after the batch in flight once this many seconds have passed; the next run resumes.",
)
@click.option(
    "--shard",
    metavar="K/N",
    callback=_parse_shard,
    help="Work on shard K of N (users with pk % N == K-1), under its own lock, so N "
    "processes share one backfill.",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    metavar="SECONDS",
    help="Wait this long for another run's lock instead of exiting 75 at once.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1, max=16),
    default=2,
    show_default=True,
    help="Batches to run at once, each on its own database connection: the work is the "
    "database server's, so two keep two of its cores busy; --jobs 1 is the gentlest. "
    "SQLite has one writer and always runs one; so does --limit, to stop at exactly N.",
)
@click.option("--no-lock", is_flag=True,
              help="Run without the lock (correctness never depends on it).")  # fmt: skip
@format_option(help="json: one object with the figures.")
def command(
    cmd: ClickCommand, *, batch_size: int | None, limit: int | None, dry_run: bool, check: bool,
    max_seconds: float | None, shard: Shard, wait: float, jobs: int, no_lock: bool,
    output_format: str, database: str,
) -> None:  # fmt: skip
    """Create a profile for every user that has none.

    Users made by bulk_create, raw SQL, an import or with the profile receiver
    switched off have no profile. This walks the user table in primary-key
    batches and inserts the missing profiles with one set-based statement per
    batch. It is idempotent (a second run finds nothing to do) and safe to run
    from cron: one run per database (or per --shard) holds a lock in the
    database; another run exits 75. It creates profiles only: post_save is not
    replayed, so nobody gets a welcome e-mail.
    """
    database_ready(using=database)
    if check or dry_run:
        missing = users_without_profile_count(using=database, shard=shard)
        would_create = missing if limit is None else min(missing, limit)
        _report_count(cmd, missing=missing, would_create=would_create, check=check,
                      output_format=output_format, shard=shard)  # fmt: skip
        if check and missing:
            raise CommandError(f"{missing} user(s) lack a profile; run "
                               "'manage.py backfill_profiles'.", returncode=1)  # fmt: skip
        return
    lock_name = "backfill_profiles" if shard.count == 1 else f"backfill_profiles:{shard}"
    lock_database = settings.BACKFILL_LOCK_DATABASE or database
    if not no_lock and lock_database != database:
        database_ready(using=lock_database)
    lock: AbstractContextManager[None] = (
        nullcontext() if no_lock else database_lock(lock_name, using=lock_database, wait=wait)
    )
    try:
        with lock, stop_on_signals() as stop, progress(cmd, label="Backfilling") as advance:
            result = profiles_backfill(
                using=database, batch_size=batch_size or default_batch_size(using=database),
                shard=shard, limit=limit,
                max_seconds=max_seconds, should_stop=stop.requested, on_batch=advance, jobs=jobs,
            )  # fmt: skip
    except LockHeld:
        raise CommandError(
            f"another backfill_profiles run holds the lock on database {database!r}"
            f"{'' if shard.count == 1 else f' for shard {shard}'}; try again later, "
            "or pass --wait SECONDS.",
            returncode=EX_TEMPFAIL,
        ) from None
    _report(cmd, result, output_format=output_format, shard=shard)
    if result.stopped == "signal" and stop.signum is not None:
        raise CommandError(
            f"interrupted after creating {result.created} profile(s) up to user pk "
            f"{result.last_pk}; the batch in flight was committed; run again to finish.",
            returncode=exit_code_for(stop.signum),
        )


def _report_count(cmd: ClickCommand, *, missing: int, would_create: int, check: bool,
                  output_format: str, shard: Shard) -> None:  # fmt: skip
    if output_format == "json":
        cmd.stdout.write(json.dumps({
            "mode": "check" if check else "dry_run", "shard": str(shard),
            "users_without_profile": missing, "would_create": would_create,
        }))  # fmt: skip
    elif check:
        if not missing and cmd.verbosity >= 1:  # when some are missing, the error says so
            cmd.stdout.write("Every user has a profile.")
    elif cmd.verbosity >= 1:
        cmd.stdout.write(f"Dry run: would create {would_create} profile(s); nothing was written.")


def _report(cmd: ClickCommand, result: BackfillResult, *, output_format: str,
            shard: Shard) -> None:  # fmt: skip
    if output_format == "json":
        cmd.stdout.write(json.dumps({
            "created": result.created, "batches": result.batches,
            "seconds": round(result.seconds, 3),
            "profiles_per_second": round(result.profiles_per_second, 1),
            "last_pk": result.last_pk, "max_pk": result.max_pk,
            "stopped": result.stopped, "shard": str(shard), "jobs": result.jobs,
        }))  # fmt: skip
        return
    if cmd.verbosity < 1:
        return
    if not result.created and result.stopped is None:
        cmd.stdout.write("Nothing to do: every user has a profile.")
        return
    cmd.stdout.write(
        f"Created {result.created} profile(s) in {result.batches} batch(es), "
        f"{result.seconds:.2f} s ({result.profiles_per_second:,.0f}/s"
        f"{f', {result.jobs} jobs' if result.jobs > 1 else ''})."
    )
    if result.stopped in ("limit", "max_seconds"):
        why = "--limit reached" if result.stopped == "limit" else "--max-seconds passed"
        cmd.stdout.write(f"Stopped at user pk {result.last_pk} of {result.max_pk} ({why}); "
                         "run again to continue.")  # fmt: skip


Command = command.django_command_class
