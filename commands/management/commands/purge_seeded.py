"""manage.py purge_seeded: delete the users seed_users created, with their profiles."""

from __future__ import annotations

import json
import sys

import click
from django.core.management.base import CommandError

from commands.clickbridge import ClickCommand, django_command
from commands.dbready import database_ready
from commands.exitcodes import ExitCode
from commands.options import format_option
from seeding.services import PurgeResult, seeded_users_purge


@django_command(name="purge_seeded", database=True)
@click.option("--no-input", "no_input", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@format_option(help="json: one object with the counts.")
def command(cmd: ClickCommand, *, no_input: bool, dry_run: bool, output_format: str,
            database: str) -> None:  # fmt: skip
    """Delete every user created by seed_users, with their profiles.

    Only the users each seed run recorded as its own when it created them are
    deleted; a user seed_users did not create is never touched, whatever its
    name. Seed runs from before runs recorded their users, and runs still in
    progress, are left alone. Asks "Type 'yes'" first unless --no-input;
    without a terminal, --no-input is required.
    """
    database_ready(using=database)
    if not dry_run and not no_input:
        if not sys.stdin.isatty():
            raise CommandError(
                "stdin is not a terminal; pass --no-input to delete the seeded users.",
                returncode=ExitCode.USAGE,
            )
        preview = seeded_users_purge(using=database, dry_run=True)
        answer = input(
            f"This deletes {preview.users} seeded user(s) and {preview.profiles} profile(s) "
            f"from database {database!r}.\nType 'yes' to continue, or 'no' to cancel: "
        )
        if answer != "yes":
            raise CommandError("Purge cancelled.", returncode=ExitCode.FAILED)
    result = seeded_users_purge(using=database, dry_run=dry_run)
    _report(cmd, result, output_format=output_format)


def _report(cmd: ClickCommand, result: PurgeResult, *, output_format: str) -> None:
    if output_format == "json":
        cmd.stdout.write(json.dumps({
            "dry_run": result.dry_run, "runs": result.runs,
            "users": result.users, "profiles": result.profiles,
            "untracked_runs": result.untracked_runs, "runs_in_progress": result.runs_in_progress,
        }))  # fmt: skip
        return
    if cmd.verbosity < 1:
        return
    verb = "Would delete" if result.dry_run else "Deleted"
    cmd.stdout.write(
        f"{verb} {result.users} seeded user(s) and {result.profiles} profile(s) "
        f"from {result.runs} seed run(s)."
    )
    if result.untracked_runs:
        cmd.stdout.write(
            f"Left the users of {result.untracked_runs} seed run(s) alone: those runs predate "
            "the record of which users a run created, and a name alone proves nothing."
        )
    if result.runs_in_progress:
        cmd.stdout.write(
            f"Left {result.runs_in_progress} seed run(s) alone that are still in progress; "
            "run purge_seeded again when they have ended."
        )


Command = command.django_command_class
