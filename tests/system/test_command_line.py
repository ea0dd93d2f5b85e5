"""The bridge through manage.py in a real process: help, usage errors, exit codes, settings."""

from __future__ import annotations

import json
import textwrap

import django
import pytest
from django.contrib.auth import get_user_model

from commands.exitcodes import ExitCode
from commands.management.commands import backfill_profiles
from tests.helpers.commands import unreachable_database_url

User = get_user_model()


def test_help_shows_click_options_and_exit_codes(manage):
    result = manage("profiles_status", "--help")
    assert result.returncode == 0
    assert "Usage: manage.py profiles_status [OPTIONS]" in result.stdout
    for option in ("--format", "--database", "--verbosity", "--traceback", "--no-color"):
        assert option in result.stdout
    assert "Exit codes:" in result.stdout


def test_manage_help_subcommand_shows_click_help(manage):
    result = manage("help", "profiles_status")
    assert result.returncode == 0
    assert "--format [text|json]" in result.stdout


@pytest.mark.django_db(transaction=True)
def test_command_line_runs_against_the_database(manage):
    User.objects.create_user("with")
    result = manage("profiles_status", "--format", "json", "--no-color")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["with_profile"] == 1


def test_usage_error_is_one_line_exit_2(manage):
    result = manage("profiles_status", "--format", "xml")
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Invalid value for '--format'" in result.stderr


def test_unmigrated_database_is_one_line_then_traceback_on_request(manage, tmp_path):
    (tmp_path / "empty.sqlite3").touch()  # an empty file is an empty SQLite database
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}"}
    result = manage("profiles_status", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        result.stderr.strip(),
    ]
    assert "not migrated" in result.stderr and "manage.py migrate" in result.stderr
    assert "Traceback" not in result.stderr
    with_traceback = manage("profiles_status", "--traceback", env=env)
    assert with_traceback.returncode == 1
    assert "Traceback (most recent call last)" in with_traceback.stderr


def test_settings_and_pythonpath_options(manage, tmp_path):
    (tmp_path / "alt_settings.py").write_text(
        textwrap.dedent("""
        from cliproject.settings import *  # noqa: F403
        ALT_SETTINGS_LOADED = True
    """)
    )
    (tmp_path / "probe_settings.py").write_text("raise SystemExit('probe settings loaded')\n")
    ok = manage(
        "profiles_status", "--settings", "alt_settings", "--pythonpath", str(tmp_path), "--help"
    )
    assert ok.returncode == 0, ok.stderr
    probe = manage("check", "--settings", "probe_settings", "--pythonpath", str(tmp_path))
    assert "probe settings loaded" in probe.stderr
    probe_ours = manage(
        "profiles_status", "--settings", "probe_settings", "--pythonpath", str(tmp_path)
    )
    assert "probe settings loaded" in probe_ours.stderr


def test_a_subcommand_usage_error_points_at_the_subcommand_help(manage):
    result = manage("receivers", "off", "--for", "3x", "profiles.receivers.create_profile")
    assert result.returncode == 2
    assert "(see 'manage.py receivers off --help')" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_help_of_a_real_process_shows_the_codes_it_can_return(manage):
    result = manage("backfill_profiles", "--help")
    assert result.returncode == 0, result.stderr
    table = backfill_profiles.command.epilog.split("Exit codes:")[1].split()
    assert " ".join(result.stdout.split("Exit codes:")[1].split()) == " ".join(table)
    assert "77 " not in result.stdout.split("Exit codes:")[1]  # only seed_users refuses


@pytest.mark.parametrize(
    "command", [("profiles_status",), ("welcome_mails",), ("welcome_mails", "sync")]
)
def test_dash_h_is_help_as_in_djangos_commands(manage, command):
    result = manage(*command, "-h")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: manage.py {' '.join(command)} [OPTIONS]")
    assert "-h, --help" in result.stdout


@pytest.mark.parametrize(
    "command", [("profiles_status",), ("welcome_mails",), ("welcome_mails", "sync")]
)
def test_version_prints_djangos_version_as_djangos_commands_do(manage, command):
    django_own = manage("migrate", "--version")
    result = manage(*command, "--version")
    assert result.returncode == django_own.returncode == 0
    assert result.stdout == django_own.stdout == f"{django.get_version()}\n"


@pytest.mark.parametrize(
    "arguments",
    [
        ("backfill_profiles", "--check", "--dry-run"),
        ("welcome_mails", "sync", "--check", "--limit", "5"),
        ("welcome_mails", "send", "--no-lock", "--wait", "5"),
        ("signal_matrix", "--wide", "--format", "json"),
    ],
)
def test_options_that_cannot_go_together_are_exit_2_even_with_the_database_down(manage, arguments):
    result = manage(*arguments, env={"DATABASE_URL": unreachable_database_url()})
    assert result.returncode == ExitCode.USAGE, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "cannot be used together" in line or "--wide is for --format text" in line
