"""users_raw_driver, the insert_users reference: each backend's fastest path, every row in."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from bench import registry, runner
from bench.cases import users

User = get_user_model()

pytestmark = pytest.mark.django_db(transaction=True)

# Two full statements of 100 rows on SQLite, and a shorter one for the rest.
SIZE = 250


def reference() -> registry.Case:
    [case] = [c for c in registry.all_cases() if c.name == "users_raw_driver"]
    return case


def test_every_pregenerated_row_arrives_as_generated():
    case = reference()
    prepared = case.setup(SIZE, "default")
    expected = {
        row[[f.name for f in prepared["fields"]].index("username")] for row in prepared["rows"]
    }

    assert case.body(SIZE, "default", **prepared) == SIZE

    assert set(User.objects.values_list("username", flat=True)) == expected
    assert not User.objects.exclude(password="!").exists()
    assert User.objects.filter(is_active=True, is_staff=False).count() == SIZE


@pytest.mark.applies_if(connection.vendor == "sqlite", "SQLite's multi-row statements")
def test_sqlite_sends_a_statement_per_hundred_rows():
    statements = []
    case = reference()
    prepared = case.setup(SIZE, "default")
    connection.ensure_connection()
    connection.connection.set_trace_callback(statements.append)
    try:
        case.body(SIZE, "default", **prepared)
    finally:
        connection.connection.set_trace_callback(None)

    inserts = [s for s in statements if s.startswith("INSERT")]
    assert len(inserts) == 3  # not 250, one a row
    # The trace shows the values bound: each row's first name is 'Raw'.
    assert [s.count("'Raw'") for s in inserts] == [100, 100, 50]
    assert users.SQLITE_RAW_ROWS_PER_STATEMENT == 100


@pytest.mark.applies_if(connection.vendor == "postgresql", "PostgreSQL's COPY")
def test_postgresql_copies_in_binary(monkeypatch):
    import psycopg

    sent = []
    copy = psycopg.Cursor.copy

    def recorded(self, statement, *args, **kwargs):
        sent.append(str(statement))
        return copy(self, statement, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "copy", recorded)
    [result] = runner.run_cases([reference()], size=SIZE, repeat=1, using="default")

    assert result.size == SIZE
    assert sent and all(s.endswith("FROM STDIN (FORMAT BINARY)") for s in sent)
