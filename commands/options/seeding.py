"""seed_users' own options, checked while click parses the command line.

So they refuse before the bridge touches the database: an unknown locale or
receiver to mute, a --field that is not NAME=VALUE, two passwords, an
unreadable password file, and a run with DEBUG off without --force.
"""

from __future__ import annotations

from pathlib import Path

import click
from django.conf import settings
from django.core.management.base import CommandError

from commands.exitcodes import ExitCode
from dbtools.errors import UsageError
from seeding.generator import DEFAULT_LOCALES, unknown_locales
from switches.names import resolve_names


def known_locales(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    unknown = unknown_locales(value)
    if unknown:
        raise click.BadParameter(
            f"unknown Faker locale(s): {', '.join(unknown)}; e.g. en_US, de_DE, fr_FR, ja_JP."
        )
    return value or DEFAULT_LOCALES


def parse_fields(
    ctx: click.Context, param: click.Parameter, items: tuple[str, ...]
) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in items:
        name, equals, given = item.partition("=")
        if not equals or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE, e.g. --field tenant=acme.")
        fields[name] = given
    return fields


# The callbacks below raise a UsageError or a CommandError, not click.BadParameter:
# their messages and exit codes stay what they were when the command itself checked them.


def refuse_unless_debug_or_forced(ctx: click.Context, param: click.Parameter, force: bool) -> None:
    """With DEBUG off, only --force (or a --dry-run, which writes nothing) lets a run start."""
    if not settings.DEBUG and not force and not ctx.params["dry_run"]:
        raise CommandError(
            "refusing to seed fake users with DEBUG off; pass --force if this database "
            "really is for testing.",
            returncode=ExitCode.REFUSED,
        )


def resolve_mute_names(
    ctx: click.Context, param: click.Parameter, names: tuple[str, ...]
) -> list[str]:
    return resolve_names(names)  # a bad name is a UsageError: the bridge makes it exit 2


def read_password_file(ctx: click.Context, param: click.Parameter, path: Path | None) -> str | None:
    """The first line of the file: the password."""
    if path is None:
        return None
    if ctx.params["password"] is not None:
        raise UsageError("give --password or --password-file, not both.")
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read --password-file {path}: {exc.strerror}.") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"--password-file {path} is not UTF-8 text.") from exc
    if not lines or not lines[0]:
        raise UsageError(f"--password-file {path} is empty.")
    return lines[0]
