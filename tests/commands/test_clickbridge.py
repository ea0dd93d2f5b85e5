"""The click bridge: each property a Django management command must keep."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner
from django.contrib.auth import get_user_model
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError

from commands import clickbridge
from commands.clickbridge import ClickCommand, django_command
from commands.exitcodes import ExitCode
from commands.management.commands import profiles_status
from dbtools.errors import ConfigurationError, UsageError
from tests.helpers.commands import run_command

User = get_user_model()


@django_command(name="styled")
@click.option("--fail-with", type=int, default=None)
def styled(cmd: ClickCommand, *, fail_with: int | None) -> None:
    """A test command that styles its output and fails on request."""
    if fail_with is not None:
        raise CommandError("asked to fail", returncode=fail_with)
    cmd.stdout.write(cmd.style.SUCCESS("ok"))
    cmd.stdout.write(f"verbosity={cmd.verbosity}")


@django_command(name="refusing")
@click.option("--error", type=click.Choice(["usage", "configuration"]))
def refusing(cmd: ClickCommand, *, error: str) -> None:
    """A test command whose service refuses its input."""
    if error == "usage":
        raise UsageError("--tenant must name a tenant; known: acme.")
    raise ConfigurationError("SEED_USERS_FIELD_VALUES['tenant'] is too long; fix the setting.")


def _refuse_while_parsing(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        raise CommandError(f"--strict {value!r} is refused.", returncode=ExitCode.REFUSED)


def _tenant(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        raise UsageError(f"--tenant {value!r} is unknown; known: acme.")


@django_command(name="strict")
@click.option("--strict", callback=_refuse_while_parsing)
@click.option("--tenant", callback=_tenant)
def strict(cmd: ClickCommand, *, strict: str | None, tenant: str | None) -> None:
    """A test command whose option callbacks refuse a value."""


@django_command(name="on_a_database", database=True)
def on_a_database(cmd: ClickCommand, *, database: str) -> None:
    """A test command that works on --database."""
    cmd.stdout.write(f"ran on {database}")


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        ("usage", ExitCode.USAGE, "--tenant must name a tenant; known: acme."),
        ("configuration", ExitCode.CONFIG, "SEED_USERS_FIELD_VALUES['tenant'] is too long"),
    ],
)
def test_a_service_refusing_its_input_is_exit_2_or_78_with_its_message(error, code, message):
    with pytest.raises(CommandError) as excinfo:
        call_command(refusing.django_command_class(), error=error)
    assert excinfo.value.returncode == code
    assert message in str(excinfo.value)
    assert len(str(excinfo.value).splitlines()) == 1


def test_a_command_error_while_parsing_keeps_its_code_in_every_way_in():
    with pytest.raises(CommandError) as excinfo:
        call_command(strict.django_command_class(), strict="x")
    assert excinfo.value.returncode == ExitCode.REFUSED
    result = CliRunner().invoke(strict, ["--strict", "x"])
    assert result.exit_code == ExitCode.REFUSED
    assert "--strict 'x' is refused." in result.output


def test_a_usage_error_while_parsing_is_exit_2_in_every_way_in():
    with pytest.raises(CommandError) as excinfo:
        call_command(strict.django_command_class(), tenant="x")
    assert excinfo.value.returncode == ExitCode.USAGE
    assert str(excinfo.value) == "--tenant 'x' is unknown; known: acme."
    result = CliRunner().invoke(strict, ["--tenant", "x"])
    assert result.exit_code == ExitCode.USAGE
    assert "--tenant 'x' is unknown; known: acme." in result.output


def test_the_database_is_checked_before_the_leaf_runs(monkeypatch):
    checked = []

    def unreachable(*, using):
        checked.append(using)
        raise CommandError("cannot connect to database 'default'", returncode=ExitCode.TEMPFAIL)

    monkeypatch.setattr(clickbridge, "database_ready", unreachable)
    out, err, code = run_command(on_a_database.django_command_class())
    assert (code, checked, out) == (ExitCode.TEMPFAIL, ["default"], "")
    assert "cannot connect" in err


@pytest.mark.django_db
def test_a_ready_database_runs_the_leaf():
    out, _, code = run_command(on_a_database.django_command_class(), database="default")
    assert (code, out.strip()) == (0, "ran on default")


@pytest.mark.django_db
def test_call_command_captures_stdout_and_renders_json():
    User.objects.create_user("with")
    User.objects.bulk_create([User(username="without")])
    out, err, code = run_command("profiles_status", format="json")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert data.pop("welcome_mails")["pending"] == 1  # the one saved user's
    assert data == {"database": "default", "users": 2, "with_profile": 1, "without_profile": 1}


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
