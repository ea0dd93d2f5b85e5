"""Rendering: the cells from recorded events, and the three formats from one result."""

# ruff: noqa: RUF001 - the en dash and the multiplication sign of the table are tested

from __future__ import annotations

import io
import json

import pytest
from django.core.management.base import BaseCommand

from commands.render import write_json
from signalmatrix.recording import SIGNALS, Event
from signalmatrix.render import (
    WIDTH,
    cells,
    matrix_json,
    received,
    render_markdown,
    render_text,
)
from signalmatrix.services import MatrixResult, OperationResult, signal_matrix_run
from tests.helpers.processes import PROJECT_DIR

ALL = tuple(SIGNALS)


def event(signal: str, sender: str = "auth.User", **arguments) -> Event:
    return Event(signal=signal, sender=sender, arguments=tuple(arguments.items()))


def result_with(*ops: OperationResult) -> MatrixResult:
    return MatrixResult(
        database="default",
        vendor="sqlite",
        backend="SQLite 3.0",
        django_version="5.2",
        user_model="auth.User",
        m2m_sender="auth.User_groups",
        receivers=(),
        operations=ops,
        not_rolled_back=None,
    )


def op(**fields) -> OperationResult:
    defaults = {"key": "k", "code": "code()", "variant": "", "model": "auth.User", "listened": ALL}
    return OperationResult(**{**defaults, **fields})


def test_cells_show_arguments_counts_and_other_senders():
    deleted = op(
        events=(
            event("pre_delete", "profiles.Profile", origin="QuerySet"),
            event("pre_delete", origin="QuerySet"),
            event("pre_delete", "profiles.Profile", origin="QuerySet"),
            event("pre_delete", origin="QuerySet"),
        )
    )
    assert cells(result_with(deleted), deleted)[2] == "✓ ×2, Profile ✓ ×2"
    saved = op(
        events=(
            event("pre_save", raw=True, update_fields=None),
            event("post_save", created=True, raw=True, update_fields=("a", "b")),
        ),
        users_created=1,
        profiles_created=1,
    )
    assert cells(result_with(saved), saved)[:2] == [
        "raw=True",
        "created=True raw=True update_fields=[a, b]",
    ]
    assert cells(result_with(saved), saved)[5] == "✓"


def test_cells_tell_not_sent_from_not_listened_and_no_user_created():
    quiet = op(listened=("pre_save", "post_save", "m2m_changed"), users_created=2)
    assert cells(result_with(quiet), quiet)[:6] == ["✗", "✗", "–", "–", "✗", "✗"]
    partial = op(users_created=2, profiles_created=1)
    assert cells(result_with(partial), partial)[5] == "1 of 2"
    update = op(users_created=0)
    assert cells(result_with(update), update)[5] == "–"


def test_m2m_cells_list_the_actions_of_the_through_model():
    m2m = op(
        events=(
            event("m2m_changed", "auth.User_groups", action="pre_add"),
            event("m2m_changed", "auth.User_groups", action="post_add"),
        )
    )
    assert cells(result_with(m2m), m2m)[4] == "pre_add, post_add"


def test_unsupported_and_failed_rows_say_why():
    unsupported = op(unsupported="no such feature")
    assert cells(result_with(unsupported), unsupported) == [
        *(["n/a"] * 6),
        "not supported: no such feature",
    ]
    failed = op(error="boom")
    assert cells(result_with(failed), failed)[-1] == "failed: boom"


@pytest.fixture
def matrix(db):
    return signal_matrix_run(using="default")


def test_text_fits_100_columns_at_every_verbosity(matrix):
    for verbosity in (1, 2, 3):
        lines = list(render_text(matrix, verbosity=verbosity))
        assert max(map(len, lines)) <= WIDTH, max(lines, key=len)


def test_text_is_a_table_of_the_signals_each_operation_got(matrix):
    lines = list(render_text(matrix))
    assert lines[0].startswith(f"Signal matrix: {matrix.backend}, database 'default', Django ")
    header, rule = lines[2], lines[3]
    assert header.split("  ")[0] == "operation" and header.rstrip().endswith("profile")
    assert set(rule) <= {"-", " "}
    got, profile = header.index("signals a receiver got"), header.index("profile")
    table = lines[4 : lines.index("", 4)]
    for line in table:  # every column starts where its header does
        for start in (got, profile):
            assert len(line) <= start or line[start - 2 : start] == "  ", line
    rows = {line[:got].strip(): line for line in table if not line.startswith(" ")}
    assert rows["user.save() (insert)"][got:].split() == [
        "pre_save;",
        "post_save",
        "created=True",
        "✓",
    ]
    assert rows["User.objects.bulk_create() (two users)"][got:].split() == ["none", "✗"]
    assert lines[-1].startswith(f"Ran {len(matrix.operations)} operation(s) in a transaction")


def test_wide_text_is_the_aligned_grid_of_the_markdown_table(matrix):
    lines = list(render_text(matrix, wide=True))
    header, rule = lines[2], lines[3]
    assert header.split() == ["operation", *SIGNALS, "profile", "created", "notes"]
    table = lines[2 : 4 + len(matrix.operations)]
    starts = [header.index(name) for name in ("pre_save", "post_save", "m2m_changed")]
    for line in table[2:]:
        for start in starts:  # every column starts where its header does
            assert line[start - 2 : start] == "  " and line[start] != " ", line
    assert set(rule) <= {"-", " "}
    assert max(map(len, lines)) > WIDTH  # one line per operation, however long


def test_received_lists_what_came_in_the_words_of_the_cells():
    saved = op(
        events=(
            event("pre_save", raw=True, update_fields=None),
            event("post_save", created=True, raw=True, update_fields=None),
        )
    )
    assert (
        received(result_with(saved), saved) == "pre_save raw=True; post_save created=True raw=True"
    )
    deleted = op(events=(event("pre_delete"), event("pre_delete", "profiles.Profile")))
    assert received(result_with(deleted), deleted) == "pre_delete ✓, Profile ✓"
    quiet = op()
    assert received(result_with(quiet), quiet) == "none"
    unsupported = op(unsupported="no such feature")
    assert received(result_with(unsupported), unsupported) == "n/a: not supported: no such feature"


def test_received_names_signals_listened_to_elsewhere_but_not_in_the_row_and_the_notes():
    observed = op(key="observed")
    unobserved = op(
        key="unobserved",
        listened=("pre_save", "post_save", "m2m_changed"),
        fast_deleted=("profiles.Profile",),
    )
    result = result_with(observed, unobserved)
    assert received(result, unobserved) == (
        "none; no receiver listened for pre_delete, post_delete; "
        "fast delete of Profile: rows deleted, never loaded"
    )
    # Not listened to in any row (a user model without groups): not named per row.
    no_groups = op(listened=("pre_save", "post_save", "pre_delete", "post_delete"))
    assert received(result_with(no_groups), no_groups) == "none"


def test_long_labels_errors_and_reasons_are_wrapped_within_their_columns():
    long = op(
        code="User.objects.bulk_create(" + "x" * 20 + "=True)",
        variant="a variant that is rather long, as variants go",
        error="a database error " * 12,
    )
    short = op(code="user.save()", users_created=1, profiles_created=1, events=(event("pre_save"),))
    lines = list(render_text(result_with(short, long), verbosity=2))
    assert max(map(len, lines)) <= WIDTH
    got, profile = lines[2].index("signals a receiver got"), lines[2].index("profile")
    table = lines[4 : lines.index("", 4)]
    assert table[0].split() == ["user.save()", "pre_save", "✓"]
    assert table[1].startswith("User.objects.bulk_create(")
    assert table[2].startswith("  (a variant that is rather long")
    assert table[1][profile:] == "n/a"
    error = " ".join(line[got:profile].strip() for line in table[1:])
    assert error == "n/a: failed: " + "a database error " * 11 + "a database error"


def test_the_legend_explains_only_what_the_table_shows():
    quiet = op(users_created=2)  # bulk_create: nothing came, no profile
    saved = op(users_created=1, profiles_created=1, events=(event("pre_save"),))
    legend = " ".join(render_text(result_with(quiet, saved))).split("profile  ")[-1]
    assert "none: no signal came" in legend
    assert "✓ every user it created has a profile, ✗ none has." in legend
    assert "×N" not in legend and "n/a" not in legend and "Profile ..." not in legend
    assert "–" not in legend.split("Receivers of these models")[0]


def test_text_at_verbosity_2_lists_every_signal(matrix):
    text = "\n".join(render_text(matrix, verbosity=2))
    assert "post_save from auth.User: created=True, raw=True, update_fields=None" in text
    assert "m2m_changed from auth.User_groups: action='pre_clear'" in text


def test_markdown_is_a_table_with_one_row_per_operation(matrix):
    lines = render_markdown(matrix).splitlines()
    assert lines[0].startswith("Measured by `manage.py signal_matrix --format markdown` on ")
    rows = [line for line in lines if line.startswith("|")]
    assert len(rows) == 2 + len(matrix.operations)
    assert all(row.count(" | ") == rows[0].count(" | ") for row in rows[2:])
    assert "| `user.save()` (insert) | ✓ | created=True | ✗ | ✗ | ✗ | ✓ |  |" in rows


def test_json_parses_and_keeps_arguments(matrix):
    out = io.StringIO()
    write_json(BaseCommand(stdout=out), matrix_json(matrix))
    data = json.loads(out.getvalue())
    assert data["backend"] == matrix.backend and data["django"] == matrix.django_version
    ops = {o["key"]: o for o in data["operations"]}
    assert len(ops) == len(matrix.operations)
    assert ops["loaddata"]["signals"]["post_save"] == [
        {"sender": "auth.User", "count": 1, "created": True, "raw": True, "update_fields": None}
    ]
    assert ops["loaddata"]["profile_created"] is False
    assert ops["bulk_create"]["signals"]["post_save"] == []  # listened, not sent
    assert ops["queryset_delete_unobserved"]["signals"]["pre_delete"] is None  # not listened
    assert ops["save_update_fields"]["signals"]["post_save"][0]["update_fields"] == ["first_name"]


@pytest.mark.parametrize("document", ["docs/signals.md", "README.md"])
def test_the_embedded_table_is_what_the_command_prints(matrix, document):
    text = (PROJECT_DIR / document).read_text()
    embedded = text.split("<!-- signal_matrix:start -->\n")[1].split(
        "\n<!-- signal_matrix:end -->"
    )[0]

    def rows(markdown: str) -> list[str]:
        return [line for line in markdown.splitlines() if line.startswith("|")]

    # Made on SQLite; every backend in CI must give the same rows.
    assert rows(embedded) == rows(render_markdown(matrix))
