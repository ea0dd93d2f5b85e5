"""cliproject/settings.py run in-process with a given environment: what each setting
accepts and refuses, and that a refusal is one line naming the variable, never its value.

manage.py prints an ImproperlyConfigured from the settings as it is, with exit 78
(tests/system/test_settings.py checks that path once in real processes).
"""

from __future__ import annotations

import os
import runpy
from typing import Any
from unittest import mock

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.helpers.processes import PROJECT_DIR
from tests.helpers.settings import LIMITS

SETTINGS_FILE = PROJECT_DIR / "cliproject" / "settings.py"


def settings_from(environ: dict[str, str]) -> dict[str, Any]:
    """The settings module's names, as it computes them from exactly ``environ``."""
    with mock.patch.dict(os.environ, environ, clear=True):
        return runpy.run_path(str(SETTINGS_FILE))


def refusal(environ: dict[str, str]) -> str:
    """The one line start-up stops with under ``environ``."""
    with pytest.raises(ImproperlyConfigured) as refused:
        settings_from(environ)
    message = str(refused.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize(
    ("env", "variable", "secret"),
    [
        ({"DEBUG": "0", "SECRET_KEY": ""}, "SECRET_KEY", None),
        (
            {"DATABASE_URL": "mysql://app:Sup3rSecret@db.internal:x/app"},
            "DATABASE_URL",
            "Sup3rSecret",
        ),
        ({"DATABASE_URL": "redis://:Sup3rSecret@127.0.0.1/0"}, "DATABASE_URL", "Sup3rSecret"),
        (
            {"DATABASE_URL": "postgres://app:Sup3rSecret@127.0.0.1:5432"},
            "DATABASE_URL",
            "Sup3rSecret",
        ),
        ({"DEBUG": "perhaps"}, "DEBUG", "perhaps"),
    ],
)
def test_bad_setting_is_one_line_naming_the_variable_not_its_value(env, variable, secret):
    line = refusal(env)
    assert variable in line
    if secret:
        assert secret not in line


NUMERIC_SETTINGS = {
    # name: values it refuses (beside "abc" and "-1")
    "DATABASE_CONNECT_TIMEOUT": ["0"],
    "DATABASE_LOCK_TIMEOUT_SECONDS": ["0", "2147484"],
    "BATCH_STATEMENT_TIMEOUT_SECONDS": ["0", "2147484"],
    "BATCH_RETRIES": ["1.5"],
    "RECEIVER_SWITCHES_REFRESH_SECONDS": ["5s"],
    "EMAIL_PORT": ["0", "65536"],
    "EMAIL_TIMEOUT": ["0"],
}


@pytest.mark.parametrize("variable", NUMERIC_SETTINGS)
def test_a_numeric_setting_out_of_range_stops_start_up_naming_it(variable):
    for value in ["abc", "-1", *NUMERIC_SETTINGS[variable]]:
        line = refusal({variable: value, "EMAIL_HOST": "localhost"})
        assert line.startswith(f"{variable} must be a whole "), (value, line)


def test_numeric_settings_at_their_limits_are_accepted():
    names = settings_from({**LIMITS, "EMAIL_HOST": "localhost"})
    for variable in LIMITS.keys() - {"EMAIL_PORT", "EMAIL_TIMEOUT"}:
        assert names[variable] == int(LIMITS[variable]), variable
    assert (names["_smtp"]["port"], names["_smtp"]["timeout"]) == (65535, 1)
    # The lock timeout reaches the connection: SQLite's busy timeout, in seconds.
    assert names["DATABASES"]["default"]["OPTIONS"]["timeout"] == 2147483


def test_a_development_checkout_needs_no_environment():
    names = settings_from({})
    assert names["DEBUG"] is True
    assert names["SECRET_KEY"].startswith("django-insecure-")
    assert names["DATABASES"]["default"]["NAME"] == str(PROJECT_DIR / "db.sqlite3")
    assert names["BACKFILL_LOCK_DATABASE"] is None


def test_production_takes_the_secret_key_and_mails_through_the_local_mta():
    names = settings_from({"DEBUG": "0", "SECRET_KEY": "k" * 50})
    assert (names["DEBUG"], names["SECRET_KEY"]) == (False, "k" * 50)
    assert (names["_smtp"]["host"], names["_smtp"]["port"]) == ("localhost", 25)


def mailer(names: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The default mail backend and its options, from MAILERS (6.1+) or EMAIL_* (before)."""
    if "MAILERS" in names:
        default = names["MAILERS"]["default"]
        return default["BACKEND"], default["OPTIONS"]
    return names["EMAIL_BACKEND"], {"file_path": names.get("EMAIL_FILE_PATH")}


def test_development_mail_goes_to_files_never_to_the_console(tmp_path):
    backend, options = mailer(settings_from({}))
    assert backend == "django.core.mail.backends.filebased.EmailBackend"
    assert options["file_path"] == str(PROJECT_DIR / "var" / "mail")
    backend, options = mailer(settings_from({"EMAIL_FILE_PATH": str(tmp_path)}))
    assert (backend, options["file_path"]) == (
        "django.core.mail.backends.filebased.EmailBackend",
        str(tmp_path),
    )


def test_an_email_host_means_smtp_in_development_too():
    backend, _ = mailer(settings_from({"EMAIL_HOST": "mail.example.com"}))
    assert backend == "django.core.mail.backends.smtp.EmailBackend"


def test_lock_database_url_gives_the_backfill_lock_its_own_alias():
    names = settings_from({"LOCK_DATABASE_URL": "postgres://app@db.internal:5432/app"})
    assert names["BACKFILL_LOCK_DATABASE"] == "locks"
    assert names["DATABASES"]["locks"]["HOST"] == "db.internal"
