"""manage.py purge_seeded: delete the users seed_users created, with their profiles and mails."""

from __future__ import annotations

import sys

import click
from django.core.management.base import CommandError

from commands.clickbridge import ClickCommand, django_command
from commands.exitcodes import INTERRUPTIBLE, ExitCode
from commands.options import format_option
from commands.progress import progress
from commands.reports.seeding import purge_cancelled, purge_report
from seeding.purge import seeded_users_purge


# Ctrl-C or SIGTERM rolls back the batch in flight (130/143); a rerun purges the rest.
@django_command(name="purge_seeded", database=True, exit_codes=INTERRUPTIBLE)
@click.option(
    "--no-input", "--noinput", "no_input", is_flag=True, help="Do not ask for confirmation."
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@format_option(help="json: one object with the counts.")
def command(
    cmd: ClickCommand, *, no_input: bool, dry_run: bool, output_format: str, database: str
) -> None:
    """Delete every user created by seed_users, with their profiles and welcome-mail records.

    Only the users each seed run recorded as its own when it created them are
    deleted; a user seed_users did not create is never touched, whatever its
    name. Seed runs from before runs recorded their users, and runs still in
    progress, are left alone. Asks "Type 'yes'" first unless --no-input
    (any other answer cancels, exit 0); without a terminal, --no-input is
    required. Each table goes with one DELETE per batch of users, unless a
    delete receiver needs the objects (the summary then says which).
    """
    if not dry_run and not no_input and not _confirmed(database):
        purge_cancelled(cmd, output_format=output_format)
        return
    with progress(cmd, label="Purging seeded users") as advance:
        result = seeded_users_purge(using=database, dry_run=dry_run, on_batch=advance)
    purge_report(cmd, result, output_format=output_format)


def _confirmed(database: str) -> bool:
    """Ask "Type 'yes'", as Django's flush does; whether the answer was yes."""
    if not sys.stdin.isatty():
        raise CommandError(
            "stdin is not a terminal; pass --no-input to delete the seeded users.",
            returncode=ExitCode.USAGE,
        )
    preview = seeded_users_purge(using=database, dry_run=True)
    answer = input(
        f"This deletes {preview.users} seeded user(s), {preview.profiles} profile(s) and "
        f"{preview.welcome_mails} welcome-mail record(s) from database {database!r}.\n"
        "Type 'yes' to continue, or 'no' to cancel: "
    )
    return answer == "yes"


Command = command.django_command_class
