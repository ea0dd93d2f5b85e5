"""The exit codes of every command, each with its one-line meaning.

This is the one table: each command's ``--help`` prints the codes it can
return (:func:`exit_codes_help`), and a test keeps the README's and
docs/operations.md's tables in step with it. The numbers follow sysexits.h
where one fits (75 ``EX_TEMPFAIL``, 77 ``EX_NOPERM``, 78 ``EX_CONFIG``) and
the shell's 128 + N for a signal, so cron, systemd and shell scripts can tell
"run again later" (75; the documented crontab and unit run with
``--if-locked skip``, which exits 0 when only the lock is held) from "a
person must fix something" (78, and every other non-zero code).
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    meaning: str

    # The default only lets a lookup by value, ExitCode(75), type-check: every member
    # below gives its meaning.
    def __new__(cls, value: int, meaning: str = "") -> ExitCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    OK = 0, "done, or nothing to do"
    FAILED = (
        1,
        "failed: a database or unexpected error, a --check found work left undone, "
        "or --fail-on-skip found a write that skipped receivers",
    )
    USAGE = 2, "bad usage: an option or argument is invalid; nothing was written"
    TEMPFAIL = (
        75,
        "try again later: lock held, database or mail server unreachable or lost, or a timeout",
    )
    REFUSED = 77, "refused: seeding a database with DEBUG off without --force"
    CONFIG = 78, "configuration error: fix the setting the message names, then run again"
    SIGINT = 130, "interrupted by SIGINT (Ctrl-C); committed batches stay; a rerun resumes"
    SIGTERM = 143, "interrupted by SIGTERM; committed batches stay; a rerun resumes"

    @classmethod
    def for_signal(cls, signum: int) -> ExitCode:
        """128 + the signal number, as shells report it: 130 for SIGINT, 143 for SIGTERM."""
        return cls(128 + signal.Signals(signum))


# What every command that works on a database can return (Ctrl-C included); a command
# adds what it does beyond that: SIGTERM if it stops cleanly between batches on either
# signal, REFUSED if it refuses to seed.
ON_A_DATABASE = (
    ExitCode.OK,
    ExitCode.FAILED,
    ExitCode.USAGE,
    ExitCode.TEMPFAIL,
    ExitCode.CONFIG,
    ExitCode.SIGINT,
)
INTERRUPTIBLE = (*ON_A_DATABASE, ExitCode.SIGTERM)

# As a command's --help words them when the command has no batches to keep, and
# (FAILED) when it gives no meaning of its own.
FAILED_PLAINLY = "failed: a database or unexpected error"
TEMPFAIL_PLAINLY = "try again later: the database is unreachable or was lost, or a timeout"
SIGINT_PLAINLY = "interrupted by SIGINT (Ctrl-C)"


def exit_codes_help(
    codes: Iterable[ExitCode] | None = None, *, failed: str = "", tempfail: str = ""
) -> str:
    """The table for a command's ``--help`` epilog (``\\b`` keeps click from rewrapping it):
    ``codes`` in order; FAILED and TEMPFAIL plainly, with ``failed`` and ``tempfail``
    (what else makes this command exit 1 or 75) if given; SIGINT as batches that stay
    only where SIGTERM is listed too. None is the whole table, worded as ExitCode
    says (the README's and docs' table)."""
    whole_table = codes is None
    chosen = sorted(set(codes) if codes is not None else set(ExitCode))
    width = max(len(str(int(code))) for code in chosen) + 2

    def meaning(code: ExitCode) -> str:
        if code is ExitCode.FAILED and failed:
            return f"{FAILED_PLAINLY}; {failed}"
        if code is ExitCode.FAILED and not whole_table:
            return FAILED_PLAINLY
        if code is ExitCode.TEMPFAIL and tempfail:
            return f"{TEMPFAIL_PLAINLY}; {tempfail}"
        if code is ExitCode.TEMPFAIL and not whole_table:
            return TEMPFAIL_PLAINLY
        if code is ExitCode.SIGINT and ExitCode.SIGTERM not in chosen:
            return SIGINT_PLAINLY
        return code.meaning

    rows = [f"  {int(code):<{width}}{meaning(code)}" for code in chosen]
    return "\n".join(["\b", "Exit codes:", *rows])
