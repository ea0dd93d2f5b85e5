"""What the server refuses in a batch becomes the exit code that names the setting to fix.

The other database failures are tested with real processes: tests/system/test_dbready.py.
Which SQLite names count as a missing file is decided here, on stand-in connections.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings

from commands import dbready
from commands.dbready import command_error_for, refuse_missing_sqlite_file
from commands.exitcodes import ExitCode
from dbtools.batches import TimeoutRejected, run_batch


@pytest.mark.applies_if(
    connection.vendor == "postgresql", "MySQL/MariaDB cap such values; SQLite has no server"
)
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "setting", ["DATABASE_LOCK_TIMEOUT_SECONDS", "BATCH_STATEMENT_TIMEOUT_SECONDS"]
)
def test_a_timeout_the_server_refuses_exits_78_naming_the_setting(setting):
    # Beyond what settings.py lets through: what a server with other limits would say.
    with override_settings(**{setting: 10**7}), pytest.raises(TimeoutRejected) as caught:
        run_batch(lambda: None, using="default")
    error = command_error_for(caught.value)
    assert error.returncode == ExitCode.CONFIG
    assert f"set {setting} to a value the server accepts" in str(error)
    assert len(str(error).splitlines()) == 1


def sqlite_alias(monkeypatch: pytest.MonkeyPatch, alias: str, name: str) -> None:
    fake = SimpleNamespace(vendor="sqlite", settings_dict={"NAME": name})
    monkeypatch.setattr(dbready, "connections", {alias: fake})


@pytest.mark.parametrize("alias", ["default", "locks"])
def test_a_missing_sqlite_file_is_78_naming_its_setting(monkeypatch, tmp_path, alias):
    sqlite_alias(monkeypatch, alias, str(tmp_path / "typo.sqlite3"))
    with pytest.raises(CommandError) as caught:
        refuse_missing_sqlite_file(alias)
    setting = {"default": "DATABASE_URL", "locks": "LOCK_DATABASE_URL"}[alias]
    assert caught.value.returncode == ExitCode.CONFIG
    assert f"fix {setting}, or run 'manage.py migrate --database {alias}'" in str(caught.value)
    assert str(tmp_path / "typo.sqlite3") in str(caught.value)


@pytest.mark.parametrize(
    "name",
    [
        ":memory:",
        "",  # a temporary database
        "file:memdb1?mode=memory&cache=shared",
        "file:/srv/app/db.sqlite3?mode=ro",  # a URI: SQLite's own rules
        "/nonexistent-directory/db.sqlite3",  # connecting says it cannot open it (78)
    ],
)
def test_other_sqlite_names_are_left_to_the_connection(monkeypatch, name):
    sqlite_alias(monkeypatch, "default", name)
    refuse_missing_sqlite_file("default")
