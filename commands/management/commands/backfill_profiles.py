"""manage.py backfill_profiles: create the profiles that post_save never made."""

from __future__ import annotations

from django.core.management.base import CommandError

from commands.clickbridge import ClickCommand, django_command
from commands.exitcodes import INTERRUPTIBLE, ExitCode
from commands.options import LOCK_HELD, run_locked
from commands.options.backfill import (
    backfill_options,
    check_epilog,
    recorded_if_lock_held,
    refuse_conflicts,
    run_label,
)
from commands.progress import progress
from commands.reports.backfill import interrupted, lacking, lock_held, write_count, write_run
from dbtools.stopping import stop_on_signals
from profiles.backfill import backfill_lock, default_batch_size, profiles_backfill
from profiles.selectors import MissingRecords, users_without_profile
from profiles.sharding import Shard


@django_command(
    name="backfill_profiles",
    database=True,
    metrics=True,
    validate=refuse_conflicts,
    epilog=check_epilog(a_row="a profile", command="backfill_profiles"),
    exit_codes=INTERRUPTIBLE,
    failed="with --check: users lack a profile",
    tempfail=LOCK_HELD,
)
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
    if_locked: str,
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
    lock in the database; another exits 75, or 0 with --if-locked skip. It
    creates profiles only: post_save is not replayed, so nobody gets a welcome
    e-mail.
    """
    cmd.run_record.command = run_label(
        "backfill_profiles", check=check, dry_run=dry_run, shard=shard
    )
    cmd.run_record.rows = 0
    if dry_run:
        missing = users_without_profile(using=database, shard=shard)
        write_count(cmd, missing, limit=limit, check=False, output_format=output_format)
        _record_missing(cmd, database, missing)
        return
    lock = backfill_lock(using=database, shard=shard, wait=wait, enabled=not no_lock)
    held = lock_held(database, shard)
    with (
        recorded_if_lock_held(lambda: _record_missing(cmd, database)),
        run_locked(
            cmd, lock, held=held, wait=wait, if_locked=if_locked, output_format=output_format
        ) as running,
    ):
        if not running:
            _record_missing(cmd, database)
            return
        if check:
            missing = users_without_profile(using=database, shard=shard)
        else:
            with stop_on_signals() as stop, progress(cmd, label="Backfilling") as advance:
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
    if check:
        write_count(cmd, missing, limit=None, check=True, output_format=output_format)
        _record_missing(cmd, database, missing)
        if missing.in_shard:
            raise CommandError(lacking(missing), returncode=ExitCode.FAILED)
        return
    cmd.run_record.rows = result.created
    write_run(cmd, result, shard=shard, output_format=output_format)
    _record_missing(cmd, database, result.missing)
    if result.stop_signal is not None:
        raise interrupted(result)


def _record_missing(
    cmd: ClickCommand, database: str, missing: MissingRecords | None = None
) -> None:
    """The --metrics-file's users_without_profile (the whole table's): counted only for
    a file, unless the run already knows it."""
    if missing is None and cmd.metrics_wanted:
        missing = users_without_profile(using=database)
    if missing is not None:
        cmd.run_record.gauges["users_without_profile"] = missing.in_table


Command = command.django_command_class
