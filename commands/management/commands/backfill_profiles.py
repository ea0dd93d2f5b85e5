"""manage.py backfill_profiles: create the profiles that post_save never made."""

from __future__ import annotations

import click
from django.core.management.base import CommandError

from commands.clickbridge import ClickCommand, django_command
from commands.exitcodes import ExitCode
from commands.options import batch_size_option, finite, format_option
from commands.options.backfill import parse_shard
from commands.progress import progress
from commands.reports.backfill import interrupted, lacking, lock_held, write_count, write_run
from dbtools.locks import LockHeld
from dbtools.stopping import stop_on_signals
from profiles.backfill import backfill_lock, default_batch_size, profiles_backfill
from profiles.selectors import users_without_profile
from profiles.sharding import Shard

# The largest integer every backend binds (SQLite's and PostgreSQL's bigint).
MAX_BOUND = 2**63 - 1


@django_command(name="backfill_profiles", database=True)
@batch_size_option(
    default=None,
    help="Users per batch; each batch is one statement in one short transaction. "
    "Default: 100000 on SQLite (one writer, cheap commits), 10000 elsewhere.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=MAX_BOUND),
    default=None,
    help="Stop after creating this many profiles.",
)
@click.option("--dry-run", is_flag=True, help="Count the profiles that would be created.")
@click.option(
    "--check",
    is_flag=True,
    help="Create nothing; exit 1 if any user (of the shard, with --shard) lacks a profile, "
    "else 0 (for monitoring).",
)
@click.option(
    "--max-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    callback=finite,
    help="Stop after the batch in flight once this many seconds have passed; the next run resumes.",
)
@click.option(
    "--shard",
    metavar="K/N",
    callback=parse_shard,
    help="Work on shard K of N (users with pk % N == K-1; integer pks only), under its own "
    "lock, so N processes share one backfill.",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    metavar="SECONDS",
    callback=finite,
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
@click.option(
    "--no-lock", is_flag=True, help="Run without the lock (correctness never depends on it)."
)
@format_option(help="json: one object with the figures.")
def command(
    cmd: ClickCommand,
    *,
    batch_size: int | None,
    limit: int | None,
    dry_run: bool,
    check: bool,
    max_seconds: float | None,
    shard: Shard,
    wait: float,
    jobs: int,
    no_lock: bool,
    output_format: str,
    database: str,
) -> None:
    """Create a profile for every user that has none.

    Users made by bulk_create, raw SQL, an import or with the profile receiver
    switched off have no profile. This walks the user table in primary-key
    order, in batches, and inserts the missing profiles with one set-based
    statement per batch. It is idempotent (a second run finds nothing to do)
    and safe to run from cron: one run per database (or per --shard) holds a
    lock in the database; another run exits 75. It creates profiles only:
    post_save is not replayed, so nobody gets a welcome e-mail.
    """
    if check or dry_run:
        missing = users_without_profile(using=database, shard=shard)
        write_count(cmd, missing, limit=limit, check=check, output_format=output_format)
        if check and missing.in_shard:
            raise CommandError(lacking(missing), returncode=ExitCode.FAILED)
        return
    lock = backfill_lock(using=database, shard=shard, wait=wait, enabled=not no_lock)
    try:
        with lock, stop_on_signals() as stop, progress(cmd, label="Backfilling") as advance:
            result = profiles_backfill(
                using=database,
                batch_size=batch_size or default_batch_size(using=database),
                shard=shard,
                limit=limit,
                max_seconds=max_seconds,
                stop=stop,
                on_batch=advance,
                jobs=jobs,
            )
    except LockHeld:
        raise CommandError(lock_held(database, shard), returncode=ExitCode.TEMPFAIL) from None
    write_run(cmd, result, shard=shard, output_format=output_format)
    if result.stop_signal is not None:
        raise interrupted(result)


Command = command.django_command_class
