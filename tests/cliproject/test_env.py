"""cliproject/env.py in-process: typed settings from a mapping, errors naming the variable."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from cliproject.env import (
    LOG_FORMATS,
    LOG_LEVELS,
    LONGEST_TIMEOUT_SECONDS,
    env_bool,
    env_choice,
    env_int,
    load_env_file,
    secret_key,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[("1", True), ("TRUE", True), (" yes ", True), ("on", True)],
        *[("0", False), ("false", False), ("No", False), ("off", False), ("", False)],
    ],
)
def test_env_bool_reads_the_usual_spellings(value, expected):
    assert env_bool("DEBUG", not expected, environ={"DEBUG": value}) is expected


def test_env_bool_defaults_when_unset_and_refuses_anything_else():
    assert env_bool("DEBUG", True, environ={}) is True
    with pytest.raises(ImproperlyConfigured, match=r"^DEBUG must be a boolean \(1/0"):
        env_bool("DEBUG", True, environ={"DEBUG": "perhaps"})


def test_env_int_defaults_when_unset_or_empty():
    assert env_int("N", 5, minimum=0, environ={}) == 5
    assert env_int("N", 5, minimum=0, environ={"N": ""}) == 5


@pytest.mark.parametrize(
    ("value", "maximum", "message"),
    [
        ("abc", None, "N must be a whole number of at least 1."),
        ("1.5", None, "N must be a whole number of at least 1."),
        ("0", None, "N must be a whole number of at least 1."),
        ("11", 10, "N must be a whole number from 1 to 10."),
    ],
)
def test_env_int_refuses_what_is_not_a_whole_number_in_range(value, maximum, message):
    with pytest.raises(ImproperlyConfigured) as refused:
        env_int("N", 5, minimum=1, maximum=maximum, environ={"N": value})
    assert str(refused.value) == message


def test_env_int_accepts_its_bounds():
    assert env_int("N", 5, minimum=1, maximum=10, environ={"N": "1"}) == 1
    assert env_int("N", 5, minimum=1, maximum=10, environ={"N": "10"}) == 10


def test_the_longest_timeout_fits_postgresql_milliseconds():
    assert LONGEST_TIMEOUT_SECONDS * 1000 <= 2**31 - 1 < (LONGEST_TIMEOUT_SECONDS + 1) * 1000


def test_secret_key_is_required_only_with_debug_off():
    assert secret_key(debug=False, environ={"SECRET_KEY": "k"}) == "k"
    assert secret_key(debug=True, environ={}).startswith("django-insecure-")
    with pytest.raises(ImproperlyConfigured, match=r"^SECRET_KEY must be set"):
        secret_key(debug=False, environ={"SECRET_KEY": ""})


# -- the env file --


def test_the_env_file_fills_in_what_the_environment_leaves_unset(tmp_path):
    (tmp_path / ".env").write_text(
        "# the database of every cron line\n"
        "DATABASE_URL=postgres://app@db/app\n"
        "export LOG_LEVEL='INFO'\n"
        'SECRET_KEY="from the file"\n'
    )
    environ = {"SECRET_KEY": "from the environment"}
    assert load_env_file(tmp_path, environ=environ) == tmp_path / ".env"
    assert environ == {
        "DATABASE_URL": "postgres://app@db/app",
        "LOG_LEVEL": "INFO",
        "SECRET_KEY": "from the environment",  # a variable given to the process wins
    }


def test_no_env_file_is_nothing_to_read(tmp_path):
    environ: dict[str, str] = {}
    assert load_env_file(tmp_path, environ=environ) is None
    assert environ == {}


def test_django_env_file_names_another_file_or_none(tmp_path):
    (tmp_path / ".env").write_text("FROM=beside manage.py\n")
    elsewhere = tmp_path / "app.env"
    elsewhere.write_text("FROM=elsewhere\n")
    environ = {"DJANGO_ENV_FILE": str(elsewhere)}
    assert load_env_file(tmp_path, environ=environ) == elsewhere
    assert environ["FROM"] == "elsewhere"
    switched_off = {"DJANGO_ENV_FILE": ""}
    assert load_env_file(tmp_path, environ=switched_off) is None
    assert "FROM" not in switched_off


def test_a_named_env_file_that_does_not_exist_stops_start_up(tmp_path):
    with pytest.raises(
        ImproperlyConfigured, match=r"^DJANGO_ENV_FILE names no file that exists\.$"
    ):
        load_env_file(tmp_path, environ={"DJANGO_ENV_FILE": str(tmp_path / "nope.env")})


def test_a_directory_is_no_env_file(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="names no file that exists"):
        load_env_file(tmp_path, environ={"DJANGO_ENV_FILE": str(tmp_path)})


def test_values_are_taken_as_written_as_systemd_reads_them(tmp_path):
    (tmp_path / ".env").write_text("HOST=db\nDATABASE_URL=postgres://app:pa${HOST}ss@db/app\n")
    environ: dict[str, str] = {}
    load_env_file(tmp_path, environ=environ)
    assert environ["DATABASE_URL"] == "postgres://app:pa${HOST}ss@db/app"  # no expansion


def test_a_line_that_cannot_be_parsed_stops_start_up_naming_the_line(tmp_path):
    (tmp_path / ".env").write_text("DEBUG=0\nthis is not a variable\nSECRET_KEY=x\n")
    with pytest.raises(ImproperlyConfigured, match=r"\.env has a line it cannot read: line 2\.$"):
        load_env_file(tmp_path, environ={})


def test_under_pytest_only_a_named_file_is_read(tmp_path):
    (tmp_path / ".env").write_text("FROM=beside manage.py\n")
    environ = {"PYTEST_VERSION": "9.0"}
    assert load_env_file(tmp_path, environ=environ) is None
    assert "FROM" not in environ


def test_without_read_default_only_a_named_file_is_read(tmp_path):
    (tmp_path / ".env").write_text("FROM=beside manage.py\n")
    environ: dict[str, str] = {}
    assert load_env_file(tmp_path, read_default=False, environ=environ) is None
    assert environ == {}
    named = {"DJANGO_ENV_FILE": str(tmp_path / ".env")}
    assert load_env_file(tmp_path, read_default=False, environ=named) == tmp_path / ".env"
    assert named["FROM"] == "beside manage.py"


def test_an_env_file_that_cannot_be_read_stops_start_up_naming_it(tmp_path):
    (tmp_path / ".env").write_bytes(b"DATABASE_URL=postgres://app:\xff@db/app\n")  # not UTF-8
    with pytest.raises(ImproperlyConfigured, match=r"The env file .*\.env cannot be read\.$"):
        load_env_file(tmp_path, environ={})


# -- choices: LOG_LEVEL, LOG_FORMAT --


def test_env_choice_takes_any_case_and_returns_the_listed_spelling():
    assert env_choice("LOG_LEVEL", "WARNING", LOG_LEVELS, environ={"LOG_LEVEL": "info"}) == "INFO"
    assert env_choice("LOG_LEVEL", "WARNING", LOG_LEVELS, environ={}) == "WARNING"
    assert env_choice("LOG_FORMAT", "text", LOG_FORMATS, environ={"LOG_FORMAT": " JSON "}) == "json"


def test_env_choice_refuses_anything_else_naming_the_choices():
    with pytest.raises(ImproperlyConfigured) as raised:
        env_choice("LOG_LEVEL", "WARNING", LOG_LEVELS, environ={"LOG_LEVEL": "verbose"})
    assert str(raised.value) == "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL."
