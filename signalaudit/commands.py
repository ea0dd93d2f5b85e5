"""Run a management command under the detector: what ``manage.py signal_audit`` calls.

The command runs in this process, through ``call_command`` as code would run
it, with its output on the streams given, so it prints as usual; the result
holds its exit code and the report of the writes it made that skipped
receivers. Its failure is kept, not raised, so the report is still shown.
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from io import TextIOBase
from typing import IO

from django.core.management import call_command, get_commands, load_command_class
from django.core.management.base import BaseCommand, CommandError

from dbtools.errors import UsageError
from signalaudit.detector import audit_signal_skips
from signalaudit.report import AuditReport


@dataclass(frozen=True)
class CommandAudit:
    """One audited run of a management command."""

    command: str
    args: tuple[str, ...]
    report: AuditReport
    # How the command ended other than by returning: its CommandError, or the
    # SystemExit of a command that calls sys.exit() (migrate --check, test).
    error: CommandError | SystemExit | None

    @property
    def returncode(self) -> int:
        """The command's exit code, as the command line would have given it."""
        if isinstance(self.error, CommandError):
            return self.error.returncode
        if isinstance(self.error, SystemExit):
            code = self.error.code
            return code if isinstance(code, int) else int(code is not None)  # a message: 1
        return 0

    @property
    def command_line(self) -> str:
        """As one would type it after ``manage.py``: ``seed_users 50 --via bulk``."""
        return shlex.join([self.command, *self.args])


def command_audit(
    *,
    command: str,
    args: Sequence[str],
    stdout: IO[str] | TextIOBase,
    stderr: IO[str] | TextIOBase,
) -> CommandAudit:
    """Run ``command`` with ``args`` under :func:`audit_signal_skips`, writing to the streams.

    Raises :class:`UsageError` for a name no installed app provides, naming the
    closest ones, before anything runs. The command's ``CommandError`` or
    ``SystemExit`` is returned in the result, for the caller to raise once it
    has shown the report; anything else propagates, as from ``call_command``.
    """
    known = get_commands()
    if command not in known:
        raise UsageError(_unknown(command, known))
    _parse(command, known[command], args)
    error: CommandError | SystemExit | None = None
    with audit_signal_skips() as report:
        try:
            call_command(command, *args, stdout=stdout, stderr=stderr)
        except (CommandError, SystemExit) as exc:
            error = exc
    return CommandAudit(command=command, args=tuple(args), report=report, error=error)


def _parse(command: str, app: str | BaseCommand, args: Sequence[str]) -> None:
    """Parse ``args`` as the command would, before it runs: its bad usage is exit 2.

    ``call_command`` turns an argparse error into a CommandError with code 1,
    where the command's own command line exits 2. (This project's click
    commands parse in the run itself and keep their 2.)
    """
    loaded = app if isinstance(app, BaseCommand) else load_command_class(app, command)
    parser = loaded.create_parser("manage.py", command)
    try:
        parser.parse_args([str(arg) for arg in args])
    except CommandError as exc:
        raise UsageError(f"{command}: {exc}") from exc


def _unknown(command: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(command, list(known), n=3)
    if close:
        return f"unknown command {command!r}; did you mean {' or '.join(map(repr, close))}?"
    return f"unknown command {command!r}; 'manage.py help' lists the commands"
