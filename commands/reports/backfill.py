"""What a backfill prints: one summary line (or none at verbosity 0), or JSON.

For ``backfill_profiles`` (:data:`PROFILES`) and any other run of the backfill's
machinery (``welcome_mails sync``): a :class:`Rows` says what the rows are
called, which command makes them, and the names of their JSON fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.management.base import CommandError

from commands.clickbridge import ClickCommand
from commands.exitcodes import ExitCode
from commands.render import figures, write_json
from profiles.backfill import BackfillResult
from profiles.selectors import MissingRecords
from profiles.sharding import Shard


@dataclass(frozen=True)
class Rows:
    """What a backfill creates, as its reports name it."""

    noun: str  # one row: "profile"
    command: str  # what to run: "backfill_profiles"
    missing_field: str  # JSON: the users without one, "users_without_profile"
    rate_field: str  # JSON, and a result's property: "profiles_per_second"

    @property
    def nouns(self) -> str:
        return f"{self.noun}(s)"

    @property
    def a_noun(self) -> str:
        return f"{'an' if self.noun[0] in 'aeiou' else 'a'} {self.noun}"


PROFILES = Rows(
    noun="profile",
    command="backfill_profiles",
    missing_field="users_without_profile",
    rate_field="profiles_per_second",
)

# The JSON of a run, in this order (the rate is the rows'), then its shard, its jobs
# and (a sharded run) what is missing.
RUN_FIGURES = ("created", "batches", "seconds", "last_pk", "max_pk", "stopped")


def write_count(
    cmd: ClickCommand,
    missing: MissingRecords,
    *,
    limit: int | None,
    check: bool,
    output_format: str,
    rows: Rows = PROFILES,
    detail: str = "",
    extra: dict[str, Any] | None = None,
) -> None:
    """The report of ``--check`` or ``--dry-run``; ``detail`` follows the dry run's count
    (" (3 pending, 2 suppressed)"), ``extra`` its JSON figures."""
    would_create = missing.in_shard if limit is None else min(missing.in_shard, limit)
    if output_format == "json":
        values = {
            "mode": "check" if check else "dry_run",
            "shard": str(missing.shard),
            rows.missing_field: missing.in_shard,
            "would_create": would_create,
            **(extra or {}),
            **_shard_figures(missing, rows),
        }
        write_json(cmd, values)
    elif check:
        if not missing.in_shard and cmd.verbosity >= 1:  # when some are missing, the error says so
            truth = _all_have_one(missing, rows)
            cmd.stdout.write(f"{truth[0].upper()}{truth[1:]}.")
    elif cmd.verbosity >= 1:
        scope = "" if missing.shard.count == 1 else f" for shard {missing.shard}"
        others = (
            f" {missing.in_other_shards} user(s) of other shards lack one."
            if missing.in_other_shards
            else ""
        )
        cmd.stdout.write(
            f"Dry run: would create {would_create} {rows.nouns}{detail}{scope}; "
            f"nothing was written.{others}"
        )


def write_run(
    cmd: ClickCommand,
    result: BackfillResult,
    *,
    shard: Shard,
    output_format: str,
    rows: Rows = PROFILES,
    detail: str = "",
    extra: dict[str, Any] | None = None,
) -> None:
    """The report of a backfill, finished or stopped; ``detail`` follows the count of
    rows created (" (3 pending, 2 suppressed)"), ``extra`` the JSON figures of the run."""
    if output_format == "json":
        values = figures(
            result,
            *RUN_FIGURES[:3],
            rows.rate_field,
            *RUN_FIGURES[3:],
            shard=str(shard),
            jobs=result.jobs,
            **(extra or {}),
            **_shard_figures(result.missing, rows),
        )
        write_json(cmd, values)
        return
    if cmd.verbosity < 1:
        return
    if not result.created and result.stopped is None:
        done = (
            _all_have_one(result.missing, rows)
            if result.missing
            else f"every user has {rows.a_noun}"
        )
        cmd.stdout.write(f"Nothing to do: {done}.")
        return
    cmd.stdout.write(
        f"Created {result.created} {rows.nouns}{detail} in {result.batches} batch(es), "
        f"{result.seconds:.2f} s ({result.rows_per_second:,.0f}/s"
        f"{f', {result.jobs} jobs' if result.jobs > 1 else ''})."
    )
    if result.stopped in ("limit", "max_seconds"):
        why = "--limit reached" if result.stopped == "limit" else "--max-seconds passed"
        # last_pk: every user up to it is covered (a limit can stop inside a batch).
        where = (
            "within the first batch"
            if result.last_pk is None
            else f"after user pk {result.last_pk} of {result.max_pk}"
        )
        cmd.stdout.write(f"Stopped {where} ({why}); run again to continue.")
    if result.missing and result.missing.in_other_shards:
        cmd.stdout.write(
            f"{result.missing.in_other_shards} user(s) of other shards lack {rows.a_noun}."
        )


def lacking(missing: MissingRecords, rows: Rows = PROFILES) -> str:
    """Why ``--check`` exits 1, and what to run."""
    if missing.shard.count == 1:
        return f"{missing.in_shard} user(s) lack {rows.a_noun}; run 'manage.py {rows.command}'."
    return (
        f"{missing.in_shard} user(s) of shard {missing.shard} lack {rows.a_noun} "
        f"({missing.in_table} in the whole table); run "
        f"'manage.py {rows.command} --shard {missing.shard}'."
    )


def lock_held(database: str, shard: Shard, rows: Rows = PROFILES) -> str:
    """Who holds the lock a run found held (commands.options.run_locked says the rest)."""
    return (
        f"another {rows.command} run holds the lock on database {database!r}"
        f"{'' if shard.count == 1 else f' for shard {shard}'}"
    )


def interrupted(result: BackfillResult, rows: Rows = PROFILES) -> CommandError:
    """The one line, and the exit code (128 + the signal), of a run a signal stopped:
    what it left done, and what to run."""
    signum = result.stop_signal
    assert signum is not None  # only a run a signal stopped is reported as interrupted
    return CommandError(
        f"interrupted after creating {result.created} {rows.nouns} up to user pk "
        f"{result.last_pk}; the batch in flight was committed; run again to finish.",
        returncode=ExitCode.for_signal(signum),
    )


def _all_have_one(missing: MissingRecords, rows: Rows) -> str:
    """What is true when the shard's users all have a row: of the shard, and of the table."""
    if not missing.in_other_shards:
        return f"every user has {rows.a_noun}"
    return (
        f"every user of shard {missing.shard} has {rows.a_noun}; "
        f"{missing.in_other_shards} user(s) of other shards lack one"
    )


def _shard_figures(missing: MissingRecords | None, rows: Rows) -> dict[str, Any]:
    """JSON fields of a sharded run: what is missing in the shard, and in the table."""
    if missing is None or missing.shard.count == 1:
        return {}
    return {
        f"{rows.missing_field}_in_shard": missing.in_shard,
        f"{rows.missing_field}_in_table": missing.in_table,
    }
