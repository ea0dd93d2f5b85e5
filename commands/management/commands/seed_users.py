"""manage.py seed_users: fake users with Faker, through save() or a bulk insert."""

from __future__ import annotations

import json
import signal
from contextlib import nullcontext
from pathlib import Path

import click
from django.conf import settings
from django.core.management.base import CommandError

from commands.clickbridge import ClickCommand, django_command
from commands.dbready import database_ready
from commands.exitcodes import ExitCode
from commands.options import batch_size_option, format_option
from commands.progress import progress
from dbtools.stopping import stop_on_signals
from seeding.errors import SeedArgumentError, SeedSettingError
from seeding.generator import DEFAULT_LOCALES, unknown_locales
from seeding.services import SeedResult, users_seed
from switches.muting import muted
from switches.registry import ReceiverNameError, resolve_names


def _check_locales(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    unknown = unknown_locales(value)
    if unknown:
        raise click.BadParameter(
            f"unknown Faker locale(s): {', '.join(unknown)}; e.g. en_US, de_DE, fr_FR, ja_JP."
        )
    return value or DEFAULT_LOCALES


def _parse_fields(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in value:
        name, equals, given = item.partition("=")
        if not equals or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE, e.g. --field tenant=acme.")
        fields[name] = given
    return fields


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
    callback=_check_locales,
    metavar="LOCALE",
    help="Faker locale for names (repeatable, e.g. --locale de_DE --locale ja_JP). Default: en_US.",
)
@click.option(
    "--password",
    default=None,
    help="One password for every user, hashed once. Visible in the process list: "
    "prefer --password-file. Default: unusable passwords.",
)
@click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path),
    default=None,
    help="Read the password from the first line of this file.",
)
@click.option(
    "--mute",
    "mute",
    multiple=True,
    metavar="RECEIVER",
    help="Switch this receiver off for this run only, in this process (repeatable), e.g. "
    "--mute profiles.receivers.send_welcome_email. 'manage.py receivers list' names them.",
)
@click.option(
    "--field",
    "field_values",
    multiple=True,
    callback=_parse_fields,
    metavar="NAME=VALUE",
    help="A value for every user's field NAME (repeatable), for a user model field that "
    "is required and has no default. Wins over the SEED_USERS_FIELD_VALUES setting.",
)
@click.option("--dry-run", is_flag=True, help="Generate and validate the users; write nothing.")
@click.option(
    "--force", is_flag=True, help="Seed even though DEBUG is off (refused otherwise, exit 77)."
)
@format_option(help="json: one object with the summary's figures.")
def command(
    cmd: ClickCommand,
    *,
    count: int,
    via: str,
    batch_size: int,
    seed: int | None,
    locales: tuple[str, ...],
    password: str | None,
    password_file: Path | None,
    mute: tuple[str, ...],
    field_values: dict[str, str],
    dry_run: bool,
    force: bool,
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
    try:
        receivers_to_mute = resolve_names(mute)
    except ReceiverNameError as exc:
        raise CommandError(str(exc), returncode=ExitCode.USAGE) from exc
    if password is not None and password_file is not None:
        raise CommandError(
            "give --password or --password-file, not both.", returncode=ExitCode.USAGE
        )
    if password_file is not None:
        password = _read_password(password_file)
    if not settings.DEBUG and not force and not dry_run:
        raise CommandError(
            "refusing to seed fake users with DEBUG off; pass --force if this database "
            "really is for testing.",
            returncode=ExitCode.REFUSED,
        )
    database_ready(using=database)
    with (
        progress(cmd, label="Seeding users") as advance,
        stop_on_signals() as stop,
        muted(*receivers_to_mute) if receivers_to_mute else nullcontext(),
    ):
        try:
            result = users_seed(
                count=count,
                via=via,  # type: ignore[arg-type]  # click.Choice: "save" or "bulk"
                batch_size=batch_size,
                seed=seed,
                locales=locales,
                password=password,
                using=database,
                dry_run=dry_run,
                field_values=field_values,
                on_batch=advance,
                stop=stop,
            )
        except SeedSettingError as exc:
            raise CommandError(str(exc), returncode=ExitCode.CONFIG) from exc
        except SeedArgumentError as exc:
            raise CommandError(str(exc), returncode=ExitCode.USAGE) from exc
    _report(cmd, result, output_format=output_format, database=database)
    if result.stop_signal is not None:
        name = signal.Signals(result.stop_signal).name
        if result.dry_run:
            raise CommandError(
                f"interrupted by {name}; dry run, nothing was written.",
                returncode=ExitCode.for_signal(result.stop_signal),
            )
        raise CommandError(
            f"interrupted by {name} with {result.resumed_after + result.created} of "
            f"{result.requested} user(s) committed; they stay, and the same command with "
            f"--seed {result.seed} resumes the run.",
            returncode=ExitCode.for_signal(result.stop_signal),
        )


def _read_password(path: Path) -> str:
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


def _report(cmd: ClickCommand, result: SeedResult, *, output_format: str, database: str) -> None:
    if output_format == "json":
        cmd.stdout.write(
            json.dumps(
                {
                    "database": database,
                    "dry_run": result.dry_run,
                    "via": result.via,
                    "seed": result.seed,
                    "run": result.run_number,
                    "requested": result.requested,
                    "created": result.created,
                    "resumed_after": result.resumed_after,
                    "generated": result.generated,
                    "profiles_created": result.profiles_created,
                    "users_without_profile": result.users_without_profile,
                    "seconds": round(result.seconds, 3),
                    "users_per_second": round(result.users_per_second, 1),
                    "interrupted_by": (
                        signal.Signals(result.stop_signal).name
                        if result.stop_signal is not None
                        else None
                    ),
                }
            )
        )
        return
    if cmd.verbosity < 1:
        return
    if result.dry_run:
        of = f" of {result.requested}" if result.generated < result.requested else ""
        cmd.stdout.write(
            f"Dry run: generated and validated {result.generated}{of} user(s) "
            f"(seed {result.seed}) in {result.seconds:.2f} s; nothing was written."
        )
        return
    how = "save()" if result.via == "save" else "bulk insert"
    if result.resumed_after:
        cmd.stdout.write(
            f"Resumed seed run {result.run_number}, which an interrupted run left at "
            f"{result.resumed_after} of {result.requested} user(s)."
        )
    cmd.stdout.write(
        f"Created {result.created} user(s) via {how} in {result.seconds:.2f} s "
        f"({result.users_per_second:,.0f} users/s; "
        f"seed run {result.run_number}, seed {result.seed}): "
        f"{result.profiles_created} profile(s) created by receivers, "
        f"{result.users_without_profile} user(s) in the database without a profile."
    )
    if result.via == "bulk" and result.created:
        cmd.stdout.write(
            cmd.style.WARNING(
                "post_save did not fire for these users, so they have no profile: "
                "run 'manage.py backfill_profiles' to create them."
            )
        )


Command = command.django_command_class
