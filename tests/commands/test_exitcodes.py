"""One table of exit codes: the enum, every command's --help, the README and docs/operations.md."""

from __future__ import annotations

import signal
from pathlib import Path

import click
import pytest
from django.core.management import get_commands, load_command_class

from commands.clickbridge import EXIT_CODES_HELP, ClickCommand
from commands.exitcodes import ExitCode
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


def click_commands() -> list[click.Command]:
    """Every command of this project, and each subcommand of a group."""
    found: list[click.Command] = []
    for name, app in get_commands().items():
        if app != "commands":
            continue
        command = load_command_class(app, name)
        assert isinstance(command, ClickCommand)
        found.append(command.click_command)
        if isinstance(command.click_command, click.Group):
            found.extend(command.click_command.commands.values())
    return found


def test_every_command_shows_the_table_in_its_help():
    commands = click_commands()
    assert len(commands) >= 6
    for command in commands:
        assert command.epilog == EXIT_CODES_HELP, command.name


def test_signal_codes_come_from_the_enum():
    assert ExitCode.for_signal(signal.SIGINT) == ExitCode.SIGINT == 130
    assert ExitCode.for_signal(signal.SIGTERM) == ExitCode.SIGTERM == 143
