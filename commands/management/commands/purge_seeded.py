"""manage.py purge_seeded: delete the users seed_users created, with their profiles and mails."""

from __future__ import annotations

import sys

import click
from django.core.management.base import CommandError

from commands.clickbridge import ClickCommand, django_command
from commands.exitcodes import ExitCode
from commands.options import format_option
from commands.reports.seeding import purge_report
from seeding.purge import seeded_users_purge


@django_command(name="purge_seeded", database=True)
@click.option("--no-input", "no_input", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@format_option(help="json: one object with the counts.")
def command(
    cmd: ClickCommand, *, no_input: bool, dry_run: bool, output_format: str, database: str
) -> None:
    """Delete every user created by seed_users, with their profiles and welcome-mail records.

    Only the users each seed run recorded as its own when it created them are
    deleted; a user seed_users did not create is never touched, whatever its
    name. Seed runs from before runs recorded their users, and runs still in
    progress, are left alone. Asks "Type 'yes'" first unless --no-input;
    without a terminal, --no-input is required.
    """
    if not dry_run and not no_input:
        _confirm(database)
    result = seeded_users_purge(using=database, dry_run=dry_run)
    purge_report(cmd, result, output_format=output_format)


def _confirm(database: str) -> None:
    """Ask "Type 'yes'", as Django's flush does; raise CommandError unless the answer is yes."""
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
    if answer != "yes":
        raise CommandError("Purge cancelled.", returncode=ExitCode.FAILED)


Command = command.django_command_class
