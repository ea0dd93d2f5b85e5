"""The system checks in real processes: check and migrate exit 0 without a traceback, on a
migrated database, a fresh one and one not migrated yet, under any user model."""

from __future__ import annotations

import pytest


def test_database_checks_are_silent_on_a_database_that_is_not_migrated(manage, tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    result = manage("check", "--database", "default", env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
    migrated = manage("migrate", "-v", "0", env={"DATABASE_URL": url})
    assert migrated.returncode == 0, migrated.stderr


@pytest.mark.any_user_model
@pytest.mark.django_db(transaction=True)
def test_migrate_and_check_in_real_processes_exit_0_without_a_traceback(manage):
    for args in (("migrate", "--no-input"), ("check", "--database", "default")):
        result = manage(*args)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        assert "signalmatrix." not in result.stderr + result.stdout
        assert "switches.W" not in result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout


@pytest.mark.any_user_model
def test_migrate_from_scratch_and_check_exit_0_without_a_traceback(manage, tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    for args in (("migrate", "--no-input", "-v", "0"), ("check", "--database", "default")):
        result = manage(*args, env={"DATABASE_URL": url})
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        assert "signalmatrix." not in result.stderr + result.stdout
        assert "switches.W" not in result.stderr + result.stdout
