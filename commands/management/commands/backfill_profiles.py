"""manage.py backfill_profiles: create the profiles that post_save never made."""

from __future__ import annotations

import json
import math
import re
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import click
from django.conf import settings
from django.core.management.base import CommandError
from django.core.serializers.json import DjangoJSONEncoder

from commands.clickbridge import ClickCommand, django_command
from commands.dbready import database_ready
from commands.exitcodes import ExitCode
from commands.options import batch_size_option, format_option
from commands.progress import progress
from dbtools.locks import LockHeld, database_lock
from dbtools.stopping import stop_on_signals
from profiles.selectors import MissingProfiles, users_without_profile
from profiles.services import BackfillResult, default_batch_size, profiles_backfill
from profiles.sharding import WHOLE_TABLE, Shard, shard_from

# The largest integer every backend binds (SQLite's and PostgreSQL's bigint).
MAX_BOUND = 2**63 - 1


def _parse_shard(ctx: click.Context, param: click.Parameter, value: str | None) -> Shard:
    if value is None:
        return WHOLE_TABLE
    match = re.fullmatch(r"(\d+)/(\d+)", value.strip())
    if not match:
        raise click.BadParameter(f"{value!r} is not a shard; use K/N, e.g. 2/4.")
    try:
        return shard_from(int(match[1]), int(match[2]))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: {exc}.") from None


def _finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of seconds.")
    return value


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
    callback=_finite,
    help="Stop after the batch in flight once this many seconds have passed; the next run resumes.",
)
@click.option(
    "--shard",
    metavar="K/N",
    callback=_parse_shard,
    help="Work on shard K of N (users with pk % N == K-1; integer pks only), under its own "
    "lock, so N processes share one backfill.",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    metavar="SECONDS",
    callback=_finite,
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
    database_ready(using=database)
    if check or dry_run:
        missing = users_without_profile(using=database, shard=shard)
        _report_count(cmd, missing, limit=limit, check=check, output_format=output_format)
        if check and missing.in_shard:
            raise CommandError(_lacking(missing), returncode=1)
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
        raise CommandError(
            f"another backfill_profiles run holds the lock on database {database!r}"
            f"{'' if shard.count == 1 else f' for shard {shard}'}; try again later, "
            "or pass --wait SECONDS.",
            returncode=ExitCode.TEMPFAIL,
        ) from None
    _report(cmd, result, output_format=output_format, shard=shard)
    if result.stop_signal is not None:
        raise CommandError(
            f"interrupted after creating {result.created} profile(s) up to user pk "
            f"{result.last_pk}; the batch in flight was committed; run again to finish.",
            returncode=ExitCode.for_signal(result.stop_signal),
        )


def _lacking(missing: MissingProfiles) -> str:
    if missing.shard.count == 1:
        return f"{missing.in_shard} user(s) lack a profile; run 'manage.py backfill_profiles'."
    return (
        f"{missing.in_shard} user(s) of shard {missing.shard} lack a profile "
        f"({missing.in_table} in the whole table); run "
        f"'manage.py backfill_profiles --shard {missing.shard}'."
    )


def _all_have_one(missing: MissingProfiles) -> str:
    """What is true when the shard's users all have a profile: of the shard, and of the table."""
    if not missing.in_other_shards:
        return "every user has a profile"
    return (
        f"every user of shard {missing.shard} has a profile; "
        f"{missing.in_other_shards} user(s) of other shards lack one"
    )


def _shard_figures(missing: MissingProfiles | None) -> dict[str, Any]:
    """JSON fields of a sharded run: what is missing in the shard, and in the table."""
    if missing is None or missing.shard.count == 1:
        return {}
    return {
        "users_without_profile_in_shard": missing.in_shard,
        "users_without_profile_in_table": missing.in_table,
    }


def _report_count(
    cmd: ClickCommand,
    missing: MissingProfiles,
    *,
    limit: int | None,
    check: bool,
    output_format: str,
) -> None:
    would_create = missing.in_shard if limit is None else min(missing.in_shard, limit)
    if output_format == "json":
        figures = {
            "mode": "check" if check else "dry_run",
            "shard": str(missing.shard),
            "users_without_profile": missing.in_shard,
            "would_create": would_create,
            **_shard_figures(missing),
        }
        cmd.stdout.write(json.dumps(figures))
    elif check:
        if not missing.in_shard and cmd.verbosity >= 1:  # when some are missing, the error says so
            truth = _all_have_one(missing)
            cmd.stdout.write(f"{truth[0].upper()}{truth[1:]}.")
    elif cmd.verbosity >= 1:
        scope = "" if missing.shard.count == 1 else f" for shard {missing.shard}"
        others = (
            f" {missing.in_other_shards} user(s) of other shards lack one."
            if missing.in_other_shards
            else ""
        )
        cmd.stdout.write(
            f"Dry run: would create {would_create} profile(s){scope}; nothing was written.{others}"
        )


def _report(cmd: ClickCommand, result: BackfillResult, *, output_format: str, shard: Shard) -> None:
    if output_format == "json":
        figures = {
            "created": result.created,
            "batches": result.batches,
            "seconds": round(result.seconds, 3),
            "profiles_per_second": round(result.profiles_per_second, 1),
            "last_pk": result.last_pk,
            "max_pk": result.max_pk,
            "stopped": result.stopped,
            "shard": str(shard),
            "jobs": result.jobs,
            **_shard_figures(result.missing),
        }
        # DjangoJSONEncoder: a UUID pk is written as its string.
        cmd.stdout.write(json.dumps(figures, cls=DjangoJSONEncoder))
        return
    if cmd.verbosity < 1:
        return
    if not result.created and result.stopped is None:
        done = _all_have_one(result.missing) if result.missing else "every user has a profile"
        cmd.stdout.write(f"Nothing to do: {done}.")
        return
    cmd.stdout.write(
        f"Created {result.created} profile(s) in {result.batches} batch(es), "
        f"{result.seconds:.2f} s ({result.profiles_per_second:,.0f}/s"
        f"{f', {result.jobs} jobs' if result.jobs > 1 else ''})."
    )
    if result.stopped in ("limit", "max_seconds"):
        why = "--limit reached" if result.stopped == "limit" else "--max-seconds passed"
        cmd.stdout.write(
            f"Stopped at user pk {result.last_pk} of {result.max_pk} ({why}); "
            "run again to continue."
        )
    if result.missing and result.missing.in_other_shards:
        cmd.stdout.write(
            f"{result.missing.in_other_shards} user(s) of other shards lack a profile."
        )


Command = command.django_command_class
