"""The bulk insert's statements on SQLite: multi-row INSERTs within the build's parameter
limit (measured 1.3x one row per statement), the same rows whatever the split."""

from __future__ import annotations

import sqlite3

import pytest
from django.db import connection

import seeding.inserts
from tests.helpers.seeding import seed
from tests.helpers.users import user_model, users

pytestmark = [
    pytest.mark.applies_if(connection.vendor == "sqlite", reason="SQLite's multi-row INSERT"),
    pytest.mark.django_db,
]


@pytest.fixture(name="user_inserts")
def user_inserts_fixture():
    """The INSERT statements into the user table that sqlite3 runs during the test."""
    table = user_model()._meta.db_table
    seen: list[str] = []
    connection.ensure_connection()
    raw = connection.connection
    raw.set_trace_callback(
        lambda sql: seen.append(sql) if sql.startswith(f'INSERT INTO "{table}"') else None
    )
    yield seen
    raw.set_trace_callback(None)


@pytest.fixture(name="parameter_limit")
def parameter_limit_fixture():
    """Lower this connection's limit on a statement's parameters, as a build may have it."""
    connection.ensure_connection()
    raw = connection.connection
    limit = sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER
    before = raw.getlimit(limit)

    def lower(to: int) -> None:
        raw.setlimit(limit, to)

    yield lower
    raw.setlimit(limit, before)


def test_a_batch_goes_in_as_multi_row_inserts(user_inserts, monkeypatch):
    monkeypatch.setattr(seeding.inserts, "_SQLITE_ROWS", 40)
    seed(250, batch_size=100)
    assert users().count() == 250
    # Per batch of 100: 40 + 40 + 20 rows; the last batch of 50: 40 + 10.
    assert [statement.count("), (") + 1 for statement in user_inserts] == [40, 40, 20] * 2 + [
        40,
        10,
    ]


def test_no_statement_holds_more_parameters_than_the_build_allows(user_inserts, parameter_limit):
    parameter_limit(50)  # SQLite refuses a statement with more: "too many SQL variables"
    result = seed(120, batch_size=60)
    assert (result.created, users().count()) == (120, 120)
    assert len(user_inserts) > 2  # several statements per batch, each within the limit
