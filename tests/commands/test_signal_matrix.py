"""manage.py signal_matrix in-process: formats, verbosity, exit codes (real runs: tests/system)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from signalmatrix.operations import Scene
from tests.helpers.commands import run_command
from tests.signalmatrix.helpers import replace_operation  # noqa: F401 - a fixture


@pytest.mark.django_db
def test_text_names_backend_and_django_and_shows_the_table():
    out, err, code = run_command("signal_matrix")
    assert (err, code) == ("", 0)
    lines = out.splitlines()
    assert lines[0].startswith("Signal matrix: ") and ", Django " in lines[0]
    assert lines[2].split()[:6] == [
        "operation",
        "pre_save",
        "post_save",
        "pre_delete",
        "post_delete",
        "m2m_changed",
    ]
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


@pytest.mark.django_db
def test_json_is_ascii_as_every_commands_json(replace_operation):  # noqa: F811
    def broken(scene: Scene) -> Iterator[None]:
        yield
        raise RuntimeError("Zürich")

    replace_operation("queryset_update", broken)
    out, _, code = run_command("signal_matrix", format="json")
    assert code == 1
    assert out.isascii()
    errors = {o["key"]: o["error"] for o in json.loads(out)["operations"] if o["error"]}
    assert errors == {"queryset_update": "RuntimeError: Zürich"}


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
    update = "User.objects.filter(...).update()"
    row = next(line for line in out.splitlines() if line.startswith(update))
    assert "failed: " in row and "n/a" in row


def raise_database_error() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM signalmatrix_no_such_table")
