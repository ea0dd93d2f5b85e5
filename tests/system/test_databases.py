"""DATABASE_URL at start-up, in real manage.py processes: a relative SQLite path and a
server whose driver is missing stop every command with one line and exit 78.

What each URL gives or refuses, and each message: tests/cliproject/test_databases.py.
"""

from __future__ import annotations

import secrets

from commands.exitcodes import ExitCode
from tests.helpers.processes import PROJECT_DIR


def test_a_relative_sqlite_path_is_refused_and_no_file_is_created(manage):
    name = f"h3-relative-{secrets.token_hex(4)}.sqlite3"
    try:
        result = manage("migrate", env={"DATABASE_URL": f"sqlite:///{name}"})
        assert result.returncode == ExitCode.CONFIG, result.stderr
        assert result.stdout == ""
        [line] = result.stderr.splitlines()
        assert f"sqlite:////{name}" in line and f"sqlite:///{PROJECT_DIR / name}" in line
        assert not (PROJECT_DIR / name).exists()
    finally:  # the old behaviour: a database below the working directory
        for leftover in PROJECT_DIR.glob(f"{name}*"):
            leftover.unlink()


def test_mysql_without_mysqlclient_names_the_extra(manage, tmp_path):
    # As where mysqlclient is not installed: importing MySQLdb fails.
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['MySQLdb'] = None\n")
    env = {"PYTHONPATH": str(tmp_path), "DATABASE_URL": "mysql://app@127.0.0.1:1/app"}
    result = manage("profiles_status", env=env)
    assert result.returncode == ExitCode.CONFIG, result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.endswith("install it with: pip install -e '.[mysql]'")
