"""The click bridge: each property a Django management command must keep."""

from __future__ import annotations

import json
import textwrap

import click
import pytest
from click.testing import CliRunner
from django.contrib.auth import get_user_model
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError

from commands.clickbridge import ClickCommand, django_command
from commands.management.commands import profiles_status
from tests.conftest import run_command

User = get_user_model()


@django_command(name="styled")
@click.option("--fail-with", type=int, default=None)
def styled(cmd: ClickCommand, *, fail_with: int | None) -> None:
    """A test command that styles its output and fails on request."""
    if fail_with is not None:
        raise CommandError("asked to fail", returncode=fail_with)
    cmd.stdout.write(cmd.style.SUCCESS("ok"))
    cmd.stdout.write(f"verbosity={cmd.verbosity}")


@pytest.mark.django_db
def test_call_command_captures_stdout_and_renders_json():
    User.objects.create_user("with")
    User.objects.bulk_create([User(username="without")])
    out, err, code = run_command("profiles_status", format="json")
    assert code == 0 and err == ""
    assert json.loads(out) == {
        "database": "default",
        "users": 2,
        "with_profile": 1,
        "without_profile": 1,
    }


@pytest.mark.django_db
def test_call_command_accepts_click_style_arguments():
    out, _, code = run_command("profiles_status", "--format", "json", "--database", "default")
    assert code == 0
    assert json.loads(out)["users"] == 0


def test_command_error_propagates_with_its_returncode():
    with pytest.raises(CommandError) as excinfo:
        call_command(styled.django_command_class(), fail_with=42)
    assert excinfo.value.returncode == 42
    assert str(excinfo.value) == "asked to fail"


def test_click_usage_error_becomes_command_error_exit_2():
    with pytest.raises(CommandError) as excinfo:
        call_command("profiles_status", format="xml")
    assert excinfo.value.returncode == 2
    assert "xml" in str(excinfo.value)


def test_unknown_database_alias_is_a_usage_error():
    _, err, code = run_command("profiles_status", database="nope")
    assert code == 2
    assert "unknown database alias 'nope'" in err


def test_unknown_keyword_option_is_rejected_like_django_does():
    with pytest.raises(TypeError, match="Unknown option"):
        call_command("profiles_status", no_such_option=1)


@pytest.mark.django_db
def test_verbosity_zero_prints_nothing():
    out, err, code = run_command("profiles_status", verbosity=0)
    assert (out, err, code) == ("", "", 0)


def test_verbosity_reaches_the_command():
    out, _, _ = run_command(styled.django_command_class(), "-v", "2")
    assert "verbosity=2" in out


def test_no_color_and_force_color():
    colored, _, _ = run_command(styled.django_command_class(), force_color=True)
    plain, _, _ = run_command(styled.django_command_class(), no_color=True)
    assert "\x1b[" in colored
    assert "\x1b[" not in plain and "ok" in plain


def test_force_color_with_no_color_is_an_error():
    _, err, code = run_command(styled.django_command_class(), force_color=True, no_color=True)
    assert code == 1 and "--no-color" in err


def _failing_check(app_configs, **kwargs):
    return [checks.Error("deliberately broken", id="tests.E001")]


@pytest.fixture
def failing_check():
    checks.register(_failing_check, "tests")
    yield
    checks.registry.registry.registered_checks.discard(_failing_check)


def test_system_checks_run_unless_skipped(failing_check):
    with pytest.raises(SystemCheckError, match=r"tests\.E001"):
        call_command(styled.django_command_class(), skip_checks=False)
    out, _, code = run_command(styled.django_command_class())  # call_command skips by default
    assert code == 0 and "ok" in out


def test_system_checks_run_from_the_command_line(failing_check, capsys):
    command = styled.django_command_class()
    with pytest.raises(SystemExit) as excinfo:
        command.run_from_argv(["manage.py", "styled"])
    assert excinfo.value.code == 1
    assert "tests.E001" in capsys.readouterr().err
    with pytest.raises(SystemExit) as excinfo:
        styled.django_command_class().run_from_argv(["manage.py", "styled", "--skip-checks"])
    assert excinfo.value.code == 0


def test_click_runner_invokes_the_same_command():
    runner = CliRunner()
    result = runner.invoke(styled, ["--no-color", "--skip-checks"])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output
    failed = runner.invoke(styled, ["--fail-with", "3", "--skip-checks"])
    assert failed.exit_code == 3
    assert "asked to fail" in failed.output


@pytest.mark.django_db
def test_click_runner_runs_profiles_status():
    result = CliRunner().invoke(profiles_status.command, ["--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["users"] == 0


# -- through manage.py in a real process --


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


def test_unreachable_database_exits_75(manage):
    # Refused: worth trying again later (a database that needs fixing: test_dbready.py).
    result = manage("profiles_status", env={"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"})
    assert result.returncode == 75, result.stderr
    assert "cannot connect to database 'default'" in result.stderr
    assert "Traceback" not in result.stderr


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
