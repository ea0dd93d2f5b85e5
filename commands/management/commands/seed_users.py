"""manage.py seed_users: fake users with Faker, through save() or a bulk insert.

The options' callbacks refuse, while click parses the command line and so before
the bridge touches the database, what is wrong with the command line itself (an
unknown receiver to mute, two passwords, an unreadable password file) and a run
with DEBUG off without --force.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import click
from django.conf import settings
from django.core.management.base import CommandError

from commands.clickbridge import ClickCommand, django_command
from commands.exitcodes import ExitCode
from commands.options import batch_size_option, format_option
from commands.progress import progress
from commands.reports.seeding import seed_interrupted, seed_report
from dbtools.stopping import stop_on_signals
from seeding.generator import DEFAULT_LOCALES, unknown_locales
from seeding.services import Via, users_seed
from switches.muting import muted
from switches.names import ReceiverNameError, resolve_names


def _locales(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    unknown = unknown_locales(value)
    if unknown:
        raise click.BadParameter(
            f"unknown Faker locale(s): {', '.join(unknown)}; e.g. en_US, de_DE, fr_FR, ja_JP."
        )
    return value or DEFAULT_LOCALES


def _fields(ctx: click.Context, param: click.Parameter, items: tuple[str, ...]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in items:
        name, equals, given = item.partition("=")
        if not equals or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE, e.g. --field tenant=acme.")
        fields[name] = given
    return fields


# The callbacks below raise CommandError, not click.BadParameter: their messages
# and exit codes stay what they were when the command itself checked them.


def _debug_or_forced(ctx: click.Context, param: click.Parameter, force: bool) -> None:
    """With DEBUG off, only --force (or a --dry-run, which writes nothing) lets a run start."""
    if not settings.DEBUG and not force and not ctx.params["dry_run"]:
        raise CommandError(
            "refusing to seed fake users with DEBUG off; pass --force if this database "
            "really is for testing.",
            returncode=ExitCode.REFUSED,
        )


def _receivers(ctx: click.Context, param: click.Parameter, names: tuple[str, ...]) -> list[str]:
    try:
        return resolve_names(names)
    except ReceiverNameError as exc:
        raise CommandError(str(exc), returncode=ExitCode.USAGE) from exc


def _password_from_file(
    ctx: click.Context, param: click.Parameter, path: Path | None
) -> str | None:
    """The first line of the file: the password."""
    if path is None:
        return None
    if ctx.params["password"] is not None:
        raise CommandError(
            "give --password or --password-file, not both.", returncode=ExitCode.USAGE
        )
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise CommandError(
            f"cannot read --password-file {path}: {exc.strerror}.", returncode=ExitCode.USAGE
        ) from exc
    except UnicodeDecodeError as exc:
        raise CommandError(
            f"--password-file {path} is not UTF-8 text.", returncode=ExitCode.USAGE
        ) from exc
    if not lines or not lines[0]:
        raise CommandError(f"--password-file {path} is empty.", returncode=ExitCode.USAGE)
    return lines[0]


@django_command(name="seed_users", database=True)
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
    callback=_locales,
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
    callback=_password_from_file,
    help="Read the password from the first line of this file.",
)
@click.option(
    "--mute",
    "mute",
    multiple=True,
    callback=_receivers,
    metavar="RECEIVER",
    help="Switch this receiver off for this run only, in this process (repeatable), e.g. "
    "--mute profiles.receivers.send_welcome_email. 'manage.py receivers list' names them.",
)
@click.option(
    "--field",
    "field_values",
    multiple=True,
    callback=_fields,
    metavar="NAME=VALUE",
    help="A value for every user's field NAME (repeatable), for a user model field that "
    "is required and has no default. Wins over the SEED_USERS_FIELD_VALUES setting.",
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
    callback=_debug_or_forced,
    help="Seed even though DEBUG is off (refused otherwise, exit 77).",
)
@format_option(help="json: one object with the summary's figures.")
def command(
    cmd: ClickCommand,
    *,
    count: int,
    via: Via,  # click.Choice admits no other value
    batch_size: int,
    seed: int | None,
    locales: tuple[str, ...],
    password: str | None,
    password_from_file: str | None,
    mute: list[str],
    field_values: dict[str, str],
    dry_run: bool,
    output_format: str,
    database: str,
) -> None:
    """Create COUNT fake users, to show which path fires post_save.

    Through save() every user fires post_save, so the profile receiver gives
    each one a profile. Through the bulk insert no signal fires and the users
    are left without profiles; 'manage.py backfill_profiles' creates them.

    Seeded users are named "seed<run>-<n>.<first>.<last>" (an address at
    example.com/.org/.net where the username field is an e-mail field), are
    never staff, and 'manage.py purge_seeded' deletes them again. A user model
    field that is required and has no default needs --field NAME=VALUE or the
    SEED_USERS_FIELD_VALUES setting.
    """
    with (
        progress(cmd, label="Seeding users") as advance,
        stop_on_signals() as stop,
        muted(*mute) if mute else nullcontext(),
    ):
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
        )
    seed_report(cmd, result, output_format=output_format, database=database)
    if result.stop_signal is not None:
        raise seed_interrupted(result, result.stop_signal)


Command = command.django_command_class
