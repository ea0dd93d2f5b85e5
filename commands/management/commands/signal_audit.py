"""manage.py signal_audit: run another command under the detector, then report its skips."""

from __future__ import annotations

from typing import IO, TextIO, cast

import click
from django.core.management.base import CommandError, OutputWrapper

from commands.clickbridge import ClickCommand, django_command
from commands.exitcodes import ExitCode
from commands.options import format_option
from commands.reports.signal_audit import skipped, write_audit
from signalaudit.commands import command_audit


@django_command(
    name="signal_audit",
    # Everything from COMMAND on is the command's own, options included: no '--' needed.
    context_settings={"allow_interspersed_args": False},
    options_metavar="[OPTIONS] [--]",
    # COMMAND's own codes, whatever they are, and 1 for a skip with --fail-on-skip.
    exit_codes=ExitCode,
    failed="COMMAND's own; with --fail-on-skip: a write skipped receivers",
    tempfail="COMMAND's own",
)
@format_option(
    "text",
    "json",
    "markdown",
    help="text: one line per call site and a summary; json: one object on one line; "
    "markdown: a table. json and markdown are printed at every verbosity.",
)
@click.option(
    "--fail-on-skip",
    is_flag=True,
    help="Exit 1 when the command succeeded but a write skipped receivers unexpectedly "
    "(for CI). Expected skips never fail.",
)
@click.option(
    "--output",
    type=click.File("w", encoding="utf-8", lazy=False),
    default=None,
    metavar="FILE",
    help="Write the report to FILE instead of stdout (at every verbosity), so it stays "
    "apart from what the command prints.",
)
@click.argument("command_name", metavar="COMMAND")
@click.argument("command_args", metavar="[ARGS]...", nargs=-1, type=click.UNPROCESSED)
def command(
    cmd: ClickCommand,
    *,
    output_format: str,
    fail_on_skip: bool,
    output: IO[str] | None,
    command_name: str,
    command_args: tuple[str, ...],
) -> None:
    """Run a management command in this process and report each write that skipped receivers.

    COMMAND (ours or Django's: seed_users, loaddata, flush, ...) runs with its
    ARGS and prints as usual. Meanwhile every INSERT, UPDATE and DELETE through
    Django's database cursors, and this project's COPY, is checked: did a
    model's pre_save/post_save, pre_delete/post_delete or m2m_changed receivers
    run for it? Each that did not is reported with the model, the operation
    (bulk_create, QuerySet.update, raw SQL, COPY, ...), the rows, the
    receivers by their dotted names and the line of code that made it.
    Writes declared with signalaudit.signal_skips_expected() are reported as
    expected.

    It cannot see writes that bypass Django's cursors (a raw DB-API cursor,
    psycopg's copy() elsewhere), other processes or triggers: 'backfill_profiles
    --check' catches what it misses. See docs/audit.md.

    The exit code is COMMAND's own (with its error's one line); with
    --fail-on-skip it is 1 when COMMAND succeeded and a write skipped
    receivers. -v 2 also shows each statement and its database.

    Example: manage.py signal_audit --fail-on-skip -- seed_users 1000 --via bulk
    """
    audit = command_audit(
        command=command_name,
        args=command_args,
        stdout=_stream(cmd.stdout),
        stderr=_stream(cmd.stderr),
    )
    write_audit(cmd, audit, output_format=output_format, output=output)
    if audit.error is not None and audit.returncode:
        raise audit.error
    if fail_on_skip and audit.report.unexpected:
        raise CommandError(
            f"{skipped(audit.report)}; write them through save() and delete(), or declare "
            "them with signalaudit.signal_skips_expected() (docs/audit.md).",
            returncode=ExitCode.FAILED,
        )
    if audit.error is not None:
        raise audit.error  # sys.exit(0): the caller sees it as it would without the audit


def _stream(wrapper: OutputWrapper) -> TextIO:
    """The stream under Django's wrapper: the command wraps it in its own, and a wrapper
    around ours would end each of its ``ending=""`` writes (progress) with a newline."""
    return cast(TextIO, wrapper._out)


Command = command.django_command_class
