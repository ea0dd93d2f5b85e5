"""manage.py seed_users: fake users with Faker, through save() or a bulk insert."""

from __future__ import annotations

from pathlib import Path

import click

from commands.clickbridge import ClickCommand, django_command
from commands.exitcodes import INTERRUPTIBLE, ExitCode
from commands.options import batch_size_option, format_option
from commands.options.seeding import (
    known_locales,
    parse_fields,
    read_password_file,
    refuse_unless_debug_or_forced,
    resolve_mute_names,
)
from commands.progress import progress
from commands.reports.seeding import interrupted, seed_report
from dbtools.stopping import stop_on_signals
from seeding.services import MAX_COUNT, users_seed
from seeding.writer import Via


@django_command(name="seed_users", database=True, exit_codes=(*INTERRUPTIBLE, ExitCode.REFUSED))
@click.argument("count", type=click.IntRange(min=1))
@click.option(
    "--via",
    type=click.Choice(["save", "bulk"]),
    default="bulk",
    show_default=True,
    help="save: each user through Model.save(), so post_save receivers run and profiles "
    "appear. bulk: batches inserted without save(), so no signal fires (like bulk_create).",
)
@batch_size_option(default=5000, help="Users per transaction.")
@click.option(
    "--streams",
    type=click.IntRange(min=1),
    default=None,
    help="Connections a bulk run writes on at once, the batches still committed in order: "
    "one batch's server work overlaps the next one's generation, given a free core. "
    "Default: 2 on PostgreSQL; always 1 on SQLite and MySQL/MariaDB and for --via save.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    help="Random seed: the same seed on the same starting database gives the same users, "
    "whatever the batch size, and a rerun after an interrupted run resumes it. "
    "Default: a random one, printed in the summary.",
)
@click.option(
    "--locale",
    "locales",
    multiple=True,
    callback=known_locales,
    metavar="LOCALE",
    help="Faker locale for names (repeatable, e.g. --locale de_DE --locale ja_JP). Default: en_US.",
)
@click.option(
    "--password",
    default=None,
    # Eager: parsed first, wherever it stands, so --password-file's callback sees it.
    is_eager=True,
    help="One password for every user, hashed once. Visible in the process list: "
    "prefer --password-file. Default: unusable passwords.",
)
@click.option(
    "--password-file",
    "password_from_file",
    type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path),
    default=None,
    callback=read_password_file,
    help="Read the password from the first line of this file.",
)
@click.option(
    "--mute",
    "mute",
    multiple=True,
    callback=resolve_mute_names,
    metavar="RECEIVER",
    help="Switch this receiver off for this run only, in this process (repeatable), e.g. "
    "--mute profiles.receivers.send_welcome_email: the run's users get suppressed "
    "welcome-mail records (also --via bulk), never a mail. "
    "'manage.py receivers list' names them.",
)
@click.option(
    "--field",
    "field_values",
    multiple=True,
    callback=parse_fields,
    metavar="NAME=VALUE",
    help="A value for every user's field NAME (repeatable), for a user model field that "
    "is required and has no default. Wins over the SEED_USERS_FIELD_VALUES setting.",
)
@click.option(
    "--max-count",
    type=click.IntRange(min=1),
    default=MAX_COUNT,
    show_default=True,
    help="The most users this run may seed: a larger COUNT exits 2 before anything is "
    "written (a bound against a COUNT with zeros too many). The database's own bounds "
    "still hold: the seed run's counter and the integer key's room left.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    # Eager: parsed first, wherever it stands, so --force's callback sees it.
    is_eager=True,
    help="Generate and validate the users; write nothing.",
)
@click.option(
    "--force",
    is_flag=True,
    expose_value=False,
    callback=refuse_unless_debug_or_forced,
    help="Seed even though DEBUG is off (refused otherwise, exit 77).",
)
@format_option(help="json: one object with the summary's figures.")
def command(
    cmd: ClickCommand,
    *,
    count: int,
    via: Via,  # click.Choice admits no other value
    batch_size: int,
    streams: int | None,
    seed: int | None,
    locales: tuple[str, ...],
    password: str | None,
    password_from_file: str | None,
    mute: list[str],
    field_values: dict[str, str],
    max_count: int,
    dry_run: bool,
    output_format: str,
    database: str,
) -> None:
    """Create COUNT fake users, to show which path fires post_save.

    Through save() every user fires post_save, so the profile receiver gives
    each one a profile and the welcome receiver a welcome-mail record, whose
    mail is sent after each batch commits. Through the bulk insert no signal
    fires and the users are left without either; 'manage.py backfill_profiles'
    and 'manage.py welcome_mails sync' create them.

    Seeded users are named "seed<run>-<n>.<first>.<last>" (an address at
    example.com/.org/.net where the username field is an e-mail field), are
    never staff, and 'manage.py purge_seeded' deletes them again. A user model
    field that is required and has no default needs --field NAME=VALUE or the
    SEED_USERS_FIELD_VALUES setting. COUNT is at most --max-count (10,000,000
    unless raised), and at most what the database can still number.

    The summary counts the run's own users; -v 2 adds the whole table's users
    without a profile or a welcome-mail record, a count over every user.
    """
    with progress(cmd, label="Seeding users") as advance, stop_on_signals() as stop:
        result = users_seed(
            count=count,
            via=via,
            batch_size=batch_size,
            seed=seed,
            locales=locales,
            password=password if password is not None else password_from_file,
            using=database,
            dry_run=dry_run,
            field_values=field_values,
            on_batch=advance,
            stop=stop,
            mute=mute,
            max_count=max_count,
            # The whole table's figures cost a count over every user: asked for at -v 2.
            count_table=cmd.verbosity >= 2,
            streams=streams,
        )
    seed_report(cmd, result, output_format=output_format, database=database)
    if result.stop_signal is not None:
        raise interrupted(result)


Command = command.django_command_class
