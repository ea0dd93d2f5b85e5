"""manage.py signal_matrix: which ORM operations send which signals, measured on the database."""

from __future__ import annotations

import click
from django.core.management.base import CommandError

from commands.clickbridge import ClickCommand, django_command
from commands.exitcodes import ON_A_DATABASE, ExitCode
from commands.options import format_option
from commands.render import write_json
from dbtools.errors import UsageError
from signalmatrix.operations import operations_named
from signalmatrix.render import matrix_json, render_markdown, render_text
from signalmatrix.services import signal_matrix_run


def known_operations(
    ctx: click.Context, param: click.Parameter, keys: tuple[str, ...]
) -> tuple[str, ...]:
    """--operation refused while parsing, before the database is checked."""
    try:
        operations_named(keys)
    except UsageError as exc:
        raise click.BadParameter(str(exc)) from None
    return keys


def wide_only_as_text() -> None:
    """--wide with --format json or markdown refused before the database is checked."""
    params = click.get_current_context().params
    if params["wide"] and params["output_format"] != "text":
        raise UsageError(
            f"--wide is for --format text; --format {params['output_format']} is never cut."
        )


@django_command(
    name="signal_matrix", database=True, exit_codes=ON_A_DATABASE, validate=wide_only_as_text
)
@format_option(
    "text",
    "json",
    "markdown",
    help="text: a table that fits 100 columns; json: one object on one line; markdown: a "
    "table to paste into documentation. json and markdown are printed at every verbosity.",
)
@click.option(
    "--operation",
    "operations",
    multiple=True,
    metavar="KEY",
    callback=known_operations,
    help="Run only this operation (repeatable), e.g. --operation save_insert --operation "
    "bulk_create; rows keep the table's order. The keys are the 'key' fields of --format "
    "json; an unknown one lists them all.",
)
@click.option(
    "--wide",
    is_flag=True,
    help="Text as one column per signal, as the markdown table (about 350 columns wide).",
)
def command(
    cmd: ClickCommand,
    *,
    database: str,
    output_format: str,
    operations: tuple[str, ...],
    wide: bool,
) -> None:
    """Run common ORM operations and show which signals each one sends.

    Each operation (save, create, get_or_create, bulk_create, update,
    delete, loaddata, asave, groups.add, raw SQL, ...) runs on the database
    inside a transaction that is rolled back, while receivers of our own
    record the pre_save, post_save, pre_delete, post_delete and m2m_changed
    signals they get; the Profile table says whether a profile was created.
    No row is left changed and no e-mail is sent. -v 2 lists every signal
    with its arguments. See docs/signals.md.
    """
    result = signal_matrix_run(using=database, operations=operations)
    if output_format == "json":
        write_json(cmd, matrix_json(result))
    elif output_format == "markdown":
        cmd.stdout.write(render_markdown(result))
    elif cmd.verbosity >= 1:
        for line in render_text(result, verbosity=cmd.verbosity, wide=wide):
            cmd.stdout.write(line)
    if result.failed:
        names = ", ".join(op.key for op in result.failed)
        raise CommandError(
            f"{len(result.failed)} operation(s) failed on database {database!r} ({names}); "
            "the table shows the errors; run with -v 2 for every signal recorded.",
            returncode=ExitCode.FAILED,
        )


Command = command.django_command_class
