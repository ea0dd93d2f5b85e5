"""Production settings at start-up, in real manage.py processes: deploy checks pass, a bad
setting stops every command with one line and exit 78.

One process per start-up behaviour; what each setting accepts and refuses, and what
its message says, is tested in-process in tests/cliproject/.
"""

from __future__ import annotations

import json
import secrets

import pytest

from commands.exitcodes import ExitCode
from tests.helpers.processes import database_url
from tests.helpers.settings import LIMITS
from tests.helpers.users import create_user, users

PRODUCTION = {"DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(60)}


def test_deploy_checks_pass_with_production_environment(manage):
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "no issues (4 silenced)" in result.stdout


def test_bad_setting_is_one_line_naming_the_variable_not_its_value(manage):
    # Every bad setting takes this path (cliproject/settings.py raises, manage.py prints
    # the message): tests/cliproject/test_settings.py checks each one's message.
    env = {"DATABASE_URL": "mysql://app:Sup3rSecret@db.internal:x/app"}
    for command in (["check"], ["seed_users", "5"], ["backfill_profiles", "--check"]):
        result = manage(*command, env=env)
        assert result.returncode == ExitCode.CONFIG
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "DATABASE_URL" in lines[0]
        assert "Sup3rSecret" not in result.stderr


@pytest.mark.django_db(transaction=True)
def test_a_numeric_setting_out_of_range_stops_start_up_naming_it(manage):
    # Each numeric setting's range: tests/cliproject/test_settings.py.
    variable = "DATABASE_LOCK_TIMEOUT_SECONDS"
    for value in ["abc", "-1", "0", "2147484"]:
        result = manage("seed_users", "5", env={variable: value, "EMAIL_HOST": "localhost"})
        assert result.returncode == ExitCode.CONFIG, (value, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"Error: improperly configured: {variable} must be a whole ")
        assert "Traceback" not in result.stderr
    assert users().count() == 0


@pytest.mark.django_db(transaction=True)
def test_numeric_settings_at_their_limits_are_accepted(manage):
    # In a process: each backend must take the longest timeouts (SQLite's busy
    # timeout, PostgreSQL's SET LOCAL, MySQL's session variables), not only the parser.
    result = manage("seed_users", "5", env=LIMITS)
    assert result.returncode == 0, result.stderr
    assert users().count() == 5


def test_traceback_on_request(manage):
    result = manage("check", "--traceback", env={"DEBUG": "0", "SECRET_KEY": ""})
    assert result.returncode == ExitCode.CONFIG
    assert "Traceback (most recent call last)" in result.stderr


def test_missing_database_driver_is_one_line(manage, tmp_path):
    for module in ("psycopg", "psycopg2"):  # shadow whatever driver is installed
        (tmp_path / f"{module}.py").write_text("raise ImportError('not installed')\n")
    env = {"PYTHONPATH": str(tmp_path), "DATABASE_URL": "postgres://app@127.0.0.1:5432/app"}
    result = manage("profiles_status", env=env)
    assert result.returncode == ExitCode.CONFIG
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "psycopg" in result.stderr


def test_manage_py_without_django_prints_djangos_hint_not_a_traceback(manage, tmp_path):
    (tmp_path / "django.py").write_text("")  # shadows the installed Django: as if it were absent
    result = manage("profiles_status", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == ExitCode.CONFIG
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Couldn't import Django. Are you sure it's installed")
    assert "Did you forget to activate a virtual environment?" in line
    assert ".venv/bin/python manage.py" in line


@pytest.mark.parametrize(
    ("module", "missing"), [("cliproject.nope", "cliproject.nope"), ("nope.settings", "nope")]
)
def test_a_settings_module_that_does_not_exist_is_one_line(manage, module, missing):
    result = manage("profiles_status", "--settings", module)
    assert result.returncode == ExitCode.CONFIG
    assert result.stderr.strip().splitlines() == [
        f"Error: no settings module {module!r}: No module named {missing!r}; "
        "check --settings or DJANGO_SETTINGS_MODULE."
    ]


@pytest.mark.parametrize(
    ("name", "value", "choices"),
    [
        ("LOG_LEVEL", "verbose", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("LOG_FORMAT", "yaml", "text, json"),
    ],
)
def test_a_bad_log_setting_is_one_line(manage, name, value, choices):
    result = manage("profiles_status", env={name: value})
    assert result.returncode == ExitCode.CONFIG
    assert result.stderr.strip().splitlines() == [
        f"Error: improperly configured: {name} must be one of {choices}."
    ]


@pytest.mark.django_db(transaction=True)
def test_the_env_file_gives_manage_py_its_database(manage, tmp_path):
    create_user(0, "from-env-file")
    env_file = tmp_path / "app.env"
    env_file.write_text(
        f"# as cron would run it: nothing in the environment\nDATABASE_URL={database_url()}\n"
    )
    result = manage(
        "profiles_status",
        "--format",
        "json",
        env={"DATABASE_URL": None, "DJANGO_ENV_FILE": str(env_file)},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["users"] == 1


@pytest.mark.django_db(transaction=True)
def test_log_format_json_gives_each_run_one_json_line_at_info(manage):
    result = manage("profiles_status", env={"LOG_LEVEL": "INFO", "LOG_FORMAT": "json"})
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.splitlines()
    record = json.loads(line)
    assert (record["logger"], record["level"]) == ("commands.runs", "INFO")
    assert (record["command"], record["exit_code"]) == ("profiles_status", 0)
    assert record["message"].startswith("profiles_status exited 0 after ")
    quiet = manage("profiles_status", env={"LOG_FORMAT": "json"})  # WARNING by default
    assert (quiet.returncode, quiet.stderr) == (0, "")


def test_the_env_file_may_name_the_settings_module(manage, tmp_path):
    # Read by manage.py before it picks the default: a settings module of one's own
    # (docs/operations.md's Sentry recipe) named in .env takes effect.
    env_file = tmp_path / "app.env"
    env_file.write_text("DJANGO_SETTINGS_MODULE=mysite.settings\n")
    result = manage(
        "profiles_status", env={"DJANGO_ENV_FILE": str(env_file), "DJANGO_SETTINGS_MODULE": None}
    )
    assert result.returncode == ExitCode.CONFIG
    assert result.stderr.startswith("Error: no settings module 'mysite.settings'")
