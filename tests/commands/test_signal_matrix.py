"""manage.py signal_matrix in-process: formats, verbosity, exit codes (real runs: tests/system)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from django.core.management.base import CommandError

from commands import clickbridge
from commands.exitcodes import ExitCode
from signalmatrix.operations import OPERATIONS, Scene
from tests.helpers.commands import run_command
from tests.helpers.processes import PROJECT_DIR
from tests.signalmatrix.helpers import replace_operation  # noqa: F401 - a fixture


@pytest.mark.django_db
def test_text_names_backend_and_django_and_shows_the_table_in_100_columns():
    out, err, code = run_command("signal_matrix")
    assert (err, code) == ("", 0)
    lines = out.splitlines()
    assert lines[0].startswith("Signal matrix: ") and ", Django " in lines[0]
    assert lines[2].split("  ")[0] == "operation"
    assert lines[2].split() == ["operation", "signals", "a", "receiver", "got", "profile"]
    save = next(line for line in lines if line.startswith("user.save() (insert)"))
    assert save.split()[2:] == ["pre_save;", "post_save", "created=True", "✓"]
    bulk = next(line for line in lines if line.startswith("User.objects.bulk_create() "))
    assert bulk.split()[-2:] == ["none", "✗"]
    assert lines[-1].startswith("Ran ") and "rolled back" in lines[-1]
    assert max(map(len, lines)) <= 100


@pytest.mark.django_db
def test_wide_shows_one_column_per_signal():
    out, err, code = run_command("signal_matrix", "--wide")
    assert (err, code) == ("", 0)
    lines = out.splitlines()
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


@pytest.mark.django_db
def test_operation_shows_only_those_rows_in_the_order_of_the_table():
    out, err, code = run_command(
        "signal_matrix", "--operation", "bulk_create", "--operation", "save_insert"
    )
    assert (err, code) == ("", 0)
    lines = out.splitlines()
    table = lines[4 : lines.index("", 4)]
    assert [line.split("  ")[0] for line in table] == [
        "user.save() (insert)",
        "User.objects.bulk_create() (two users)",
    ]
    assert table[0].split()[-1] == "✓" and table[1].split()[-1] == "✗"
    assert lines[-1].startswith("Ran 2 operation(s) ")
    out, _, code = run_command("signal_matrix", "--operation", "raw_sql", format="json")
    assert code == 0 and [o["key"] for o in json.loads(out)["operations"]] == ["raw_sql"]


def test_an_unknown_operation_exits_2_listing_them_before_the_database_is_checked(monkeypatch):
    def unreachable(*, using):
        raise CommandError("cannot connect to database 'default'", returncode=ExitCode.TEMPFAIL)

    monkeypatch.setattr(clickbridge, "database_ready", unreachable)
    out, err, code = run_command("signal_matrix", "--operation", "save")
    assert (out, code) == ("", ExitCode.USAGE)
    assert "unknown operation 'save' (closest: save_insert, save_update, save_update_fields)" in err
    assert err.rstrip().endswith(f"the operations are: {', '.join(o.key for o in OPERATIONS)}.")
    assert "\n" not in err.rstrip()


@pytest.mark.django_db
@pytest.mark.parametrize("output_format", ["json", "markdown"])
def test_wide_with_json_or_markdown_exits_2(output_format):
    out, err, code = run_command("signal_matrix", "--wide", "--format", output_format)
    assert (out, code) == ("", ExitCode.USAGE)
    assert err == f"--wide is for --format text; --format {output_format} is never cut."


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


def documented(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def test_the_documented_keys_are_the_operations():
    doc = (PROJECT_DIR / "docs" / "signals.md").read_text()
    row = next(line for line in doc.splitlines() if line.startswith("| `--operation KEY` |"))
    keys = documented(row, "The keys are the `key` fields of the JSON (", ")")
    assert keys.replace("`", "").split(", ") == [op.key for op in OPERATIONS]


@pytest.mark.django_db
def test_the_documented_excerpt_is_what_the_command_prints():
    doc = (PROJECT_DIR / "docs" / "signals.md").read_text()
    excerpt = documented(doc, "shows this excerpt:\n\n```text\n", "```").splitlines()
    out, _, code = run_command(
        "signal_matrix", "--operation", "save_insert", "--operation", "bulk_create"
    )
    assert code == 0
    assert out.splitlines()[2 : 2 + len(excerpt)] == excerpt
