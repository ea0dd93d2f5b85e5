"""manage.py backfill_profiles: create the profiles that post_save never made."""

from __future__ import annotations

from django.core.management.base import CommandError

from commands.clickbridge import ClickCommand, django_command
from commands.exitcodes import ExitCode
from commands.options.backfill import backfill_options
from commands.progress import progress
from commands.reports.backfill import interrupted, lacking, lock_held, write_count, write_run
from dbtools.locks import LockHeld
from dbtools.stopping import stop_on_signals
from profiles.backfill import backfill_lock, default_batch_size, profiles_backfill
from profiles.selectors import users_without_profile
from profiles.sharding import Shard


@django_command(name="backfill_profiles", database=True)
@backfill_options(rows="profiles", a_row="a profile", run="backfill")
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
