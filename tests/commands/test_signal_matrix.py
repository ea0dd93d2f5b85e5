"""manage.py signal_matrix: formats, verbosity, exit codes, and a real run that changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from signalmatrix.operations import Scene
from tests.conftest import run_command
from tests.signalmatrix.helpers import database_contents, replace_operation  # noqa: F401

PROFILE = "profiles.receivers.create_profile"


@pytest.mark.django_db
def test_text_names_backend_and_django_and_shows_the_table():
    out, err, code = run_command("signal_matrix")
    assert (err, code) == ("", 0)
    lines = out.splitlines()
    assert lines[0].startswith("Signal matrix: ") and ", Django " in lines[0]
    assert lines[2].split()[:6] == ["operation", "pre_save", "post_save", "pre_delete",
                                    "post_delete", "m2m_changed"]  # fmt: skip
    save = next(line for line in lines if line.startswith("user.save() (insert)"))
    assert save.split()[2:8] == ["✓", "created=True", "✗", "✗", "✗", "✓"]
    bulk = next(line for line in lines if line.startswith("User.objects.bulk_create() "))
    assert bulk.split()[-6:] == ["✗"] * 6
    assert lines[-1].startswith("Ran ") and "rolled back" in lines[-1]


@pytest.mark.django_db
def test_verbosity_0_prints_nothing_but_the_requested_json_or_markdown():
    assert run_command("signal_matrix", verbosity=0) == ("", "", 0)
    out, _, code = run_command("signal_matrix", "--format", "json", verbosity=0)
    assert code == 0 and json.loads(out)["database"] == "default"
    out, _, code = run_command("signal_matrix", "--format", "markdown", verbosity=0)
    assert code == 0 and out.startswith("Measured by `manage.py signal_matrix")


@pytest.mark.django_db
def test_json_is_one_line():
    out, _, _ = run_command("signal_matrix", format="json")
    assert out.count("\n") == 1
    assert {o["key"] for o in json.loads(out)["operations"]} >= {"bulk_create", "loaddata"}


def test_unknown_database_and_format_are_usage_errors():
    assert run_command("signal_matrix", database="nope")[2] == 2
    assert run_command("signal_matrix", format="yaml")[2] == 2


@pytest.mark.django_db
def test_a_failed_operation_shows_in_the_table_and_exits_1(replace_operation):  # noqa: F811
    def broken(scene: Scene) -> Iterator[None]:
        yield
        raise_database_error()

    replace_operation("queryset_update", broken)
    out, err, code = run_command("signal_matrix")
    assert code == 1
    assert "1 operation(s) failed on database 'default' (queryset_update)" in err
    row = next(line for line in out.splitlines() if line.startswith("User.objects.filter(...)."
                                                                    "update()"))  # fmt: skip
    assert "failed: " in row and "n/a" in row


def raise_database_error() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM signalmatrix_no_such_table")


def test_unreachable_database_exits_75(manage):
    # Connection refused: worth trying again later (an unopenable SQLite path is a setting to fix).
    result = manage("signal_matrix", env={"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"})
    assert result.returncode == 75, result.stderr
    assert "cannot connect to database 'default'" in result.stderr
    assert "Traceback" not in result.stderr


def test_unmigrated_database_exits_1(manage, tmp_path):
    result = manage("signal_matrix", env={"DATABASE_URL": f"sqlite:///{tmp_path / 'new.sqlite3'}"})
    assert result.returncode == 1, result.stderr
    assert "is not migrated" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_a_real_run_in_another_process_leaves_every_row_as_it_was(manage):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("kept")
    before = database_contents()
    result = manage("signal_matrix", "--format", "markdown")
    assert result.returncode == 0, result.stderr
    assert "| `manage.py loaddata` (a fixture with one user) | raw=True |" in result.stdout
    assert database_contents() == before


@pytest.mark.django_db(transaction=True)
def test_a_receiver_switched_off_for_every_process_is_shown_and_measured(manage):
    switched = manage("receivers", "off", PROFILE, "--reason", "import")
    assert switched.returncode == 0, switched.stderr
    result = manage("signal_matrix")
    assert result.returncode == 0, result.stderr
    assert f"{PROFILE} (post_save, auth.User): switched off" in result.stdout
    save = next(line for line in result.stdout.splitlines() if line.startswith("user.save() (i"))
    assert save.split()[2:8] == ["✓", "created=True", "✗", "✗", "✗", "✗"]
