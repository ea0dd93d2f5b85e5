"""The exit codes of every command, each with its one-line meaning.

This is the one table: ``--help`` prints it (:func:`exit_codes_help`), and a
test keeps the README's and docs/operations.md's tables in step with it. The
numbers follow sysexits.h where one fits (75 ``EX_TEMPFAIL``, 77
``EX_NOPERM``, 78 ``EX_CONFIG``) and the shell's 128 + N for a signal, so
cron, systemd and shell scripts can tell "run again later" (75, which the
documented crontab and unit treat as success) from "a person must fix
something" (78, and every other non-zero code).
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


# What every command that works on a database can return; a command adds what it does
# beyond that: 130/143 if it stops cleanly between batches, 77 if it refuses to seed.
ON_A_DATABASE = (
    ExitCode.OK,
    ExitCode.FAILED,
    ExitCode.USAGE,
    ExitCode.TEMPFAIL,
    ExitCode.CONFIG,
)
INTERRUPTIBLE = (*ON_A_DATABASE, ExitCode.SIGINT, ExitCode.SIGTERM)

# FAILED as a command's --help says it when the command gives it no meaning of its own.
FAILED_PLAINLY = "failed: a database or unexpected error"


def exit_codes_help(codes: Iterable[ExitCode] = tuple(ExitCode), *, failed: str = "") -> str:
    """The table for a command's ``--help`` epilog (``\\b`` keeps click from rewrapping it):
    ``codes`` in order, FAILED worded as ``failed`` (what else makes this command exit 1)."""
    chosen = sorted(set(codes))
    width = max(len(str(int(code))) for code in chosen) + 2

    def meaning(code: ExitCode) -> str:
        if code is ExitCode.FAILED and failed:
            return f"{FAILED_PLAINLY}; {failed}"
        return code.meaning

    rows = [f"  {int(code):<{width}}{meaning(code)}" for code in chosen]
    return "\n".join(["\b", "Exit codes:", *rows])
