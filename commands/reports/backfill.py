"""What ``backfill_profiles`` prints: one summary line (or none at verbosity 0), or JSON."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from commands.clickbridge import ClickCommand
from commands.exitcodes import ExitCode
from commands.render import figures, write_json
from profiles.backfill import BackfillResult
from profiles.selectors import MissingProfiles
from profiles.sharding import Shard

# The JSON of a run, in this order, then its shard, its jobs and (a sharded run) what is missing.
RUN_FIGURES = (
    "created",
    "batches",
    "seconds",
    "profiles_per_second",
    "last_pk",
    "max_pk",
    "stopped",
)


def write_count(
    cmd: ClickCommand,
    missing: MissingProfiles,
    *,
    limit: int | None,
    check: bool,
    output_format: str,
) -> None:
    """The report of ``--check`` or ``--dry-run``."""
    would_create = missing.in_shard if limit is None else min(missing.in_shard, limit)
    if output_format == "json":
        values = {
            "mode": "check" if check else "dry_run",
            "shard": str(missing.shard),
            "users_without_profile": missing.in_shard,
            "would_create": would_create,
            **_shard_figures(missing),
        }
        write_json(cmd, values)
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


def write_run(
    cmd: ClickCommand, result: BackfillResult, *, shard: Shard, output_format: str
) -> None:
    """The report of a backfill, finished or stopped."""
    if output_format == "json":
        values = figures(
            result,
            *RUN_FIGURES,
            shard=str(shard),
            jobs=result.jobs,
            **_shard_figures(result.missing),
        )
        write_json(cmd, values)
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


def lacking(missing: MissingProfiles) -> str:
    """Why ``--check`` exits 1, and what to run."""
    if missing.shard.count == 1:
        return f"{missing.in_shard} user(s) lack a profile; run 'manage.py backfill_profiles'."
    return (
        f"{missing.in_shard} user(s) of shard {missing.shard} lack a profile "
        f"({missing.in_table} in the whole table); run "
        f"'manage.py backfill_profiles --shard {missing.shard}'."
    )


def lock_held(database: str, shard: Shard) -> str:
    """Why a run exits 75 at once, or after ``--wait``."""
    return (
        f"another backfill_profiles run holds the lock on database {database!r}"
        f"{'' if shard.count == 1 else f' for shard {shard}'}; try again later, "
        "or pass --wait SECONDS."
    )


def interrupted(result: BackfillResult) -> CommandError:
    """The one line, and the exit code (128 + the signal), of a run a signal stopped:
    what it left done, and what to run."""
    signum = result.stop_signal
    assert signum is not None  # only a run a signal stopped is reported as interrupted
    return CommandError(
        f"interrupted after creating {result.created} profile(s) up to user pk "
        f"{result.last_pk}; the batch in flight was committed; run again to finish.",
        returncode=ExitCode.for_signal(signum),
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
