"""One table of exit codes: the enum, every command's --help, the README and docs/operations.md."""

from __future__ import annotations

import signal
from pathlib import Path

import click
import pytest
from django.core.management import get_commands, load_command_class

from commands.clickbridge import EXIT_CODES_HELP, ClickCommand
from commands.exitcodes import (
    FAILED_PLAINLY,
    INTERRUPTIBLE,
    ON_A_DATABASE,
    SIGINT_PLAINLY,
    TEMPFAIL_PLAINLY,
    ExitCode,
)
from commands.options import LOCK_HELD
from tests.helpers.processes import PROJECT_DIR


def markdown_exit_codes(path: Path) -> dict[int, str]:
    """code -> meaning, from the table whose header starts with "| code | meaning"."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| code | meaning"))
    table: dict[int, str] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        code, meaning = (cell.strip() for cell in line.strip("|").split("|")[:2])
        assert int(code) not in table, f"{path.name}: code {code} listed twice"
        table[int(code)] = meaning
    return table


ENUM = {int(code): code.meaning for code in ExitCode}


@pytest.mark.parametrize("document", ["README.md", "docs/operations.md"])
def test_the_documented_table_is_the_enum(document):
    assert markdown_exit_codes(PROJECT_DIR / document) == ENUM


def test_the_help_epilog_lists_every_code_with_its_meaning():
    lines = EXIT_CODES_HELP.splitlines()
    assert lines[:2] == ["\b", "Exit codes:"]
    assert {int(line.split(maxsplit=1)[0]): line.split(maxsplit=1)[1] for line in lines[2:]} == ENUM


def click_commands() -> list[tuple[str, click.Command]]:
    """Every command of this project, and each subcommand of a group, by its name."""
    found: list[tuple[str, click.Command]] = []
    for name, app in get_commands().items():
        if app != "commands":
            continue
        command = load_command_class(app, name)
        assert isinstance(command, ClickCommand)
        found.append((name, command.click_command))
        if isinstance(command.click_command, click.Group):
            found.extend(
                (f"{name} {sub_name}", sub)
                for sub_name, sub in command.click_command.commands.items()
            )
    return found


def epilog_table(epilog: str) -> dict[int, str]:
    """code -> meaning, from the table that ends a command's epilog."""
    lines = epilog.splitlines()
    start = lines.index("Exit codes:")
    assert lines[start - 1] == "\b"
    return {
        int(code): meaning
        for code, meaning in (row.split(maxsplit=1) for row in lines[start + 1 :])
    }


# Each command's --help lists the codes it can return, and no other: SIGTERM only where
# a run stops cleanly between batches, 77 only for seeding, 1 with what else means it.
PLAIN = {*ON_A_DATABASE}
BATCHES = {*INTERRUPTIBLE}
EXPECTED: dict[str, tuple[set[ExitCode], str, str]] = {
    # name: (codes, what else exit 1 means, what else exit 75 means)
    "profiles_status": (PLAIN, "", ""),
    "signal_matrix": (PLAIN, "", ""),
    "receivers": (PLAIN, "", ""),
    "receivers list": (PLAIN, "", ""),
    "receivers off": (PLAIN, "", ""),
    "receivers on": (PLAIN, "", ""),
    "backfill_profiles": (BATCHES, "with --check: users lack a profile", LOCK_HELD),
    "welcome_mails": (BATCHES, "", ""),
    "welcome_mails sync": (BATCHES, "with --check: users lack a welcome-mail record", LOCK_HELD),
    "welcome_mails send": (BATCHES, "", f"{LOCK_HELD}; the mail server is unreachable"),
    "welcome_mails status": (
        PLAIN,
        "with --check: a mail waited longer than --max-age, or failed",
        "",
    ),
    "welcome_mails suppress": (PLAIN, "", ""),
    "welcome_mails retry": (PLAIN, "", ""),
    "seed_users": (BATCHES | {ExitCode.REFUSED}, "", ""),
    "purge_seeded": (BATCHES, "", ""),
    "signal_audit": (
        set(ExitCode),
        "COMMAND's own; with --fail-on-skip: a write skipped receivers",
        "COMMAND's own",
    ),
}


def test_every_command_lists_the_codes_it_can_return_with_their_meanings():
    commands = {name: command for name, command in click_commands()}
    assert set(EXPECTED) <= set(commands)
    for name, (codes, failed, tempfail) in EXPECTED.items():
        table = epilog_table(commands[name].epilog or "")
        assert set(table) == codes, name
        for code, meaning in table.items():
            if code == ExitCode.FAILED and failed:
                assert meaning == f"{FAILED_PLAINLY}; {failed}", name
            elif code == ExitCode.TEMPFAIL and tempfail:
                assert meaning == f"{TEMPFAIL_PLAINLY}; {tempfail}", name
            elif code == ExitCode.FAILED:
                assert meaning == FAILED_PLAINLY, name
            elif code == ExitCode.TEMPFAIL:
                assert meaning == TEMPFAIL_PLAINLY, name
            elif code == ExitCode.SIGINT and ExitCode.SIGTERM not in codes:
                assert meaning == SIGINT_PLAINLY, name
            else:
                assert meaning == ENUM[code], name


def test_every_command_declares_its_codes():
    undeclared = [name for name, command in click_commands() if name not in EXPECTED]
    assert undeclared == []


def test_signal_codes_come_from_the_enum():
    assert ExitCode.for_signal(signal.SIGINT) == ExitCode.SIGINT == 130
    assert ExitCode.for_signal(signal.SIGTERM) == ExitCode.SIGTERM == 143
