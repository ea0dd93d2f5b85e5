"""The bulk insert's statements on SQLite: multi-row INSERTs within the build's parameter
limit (measured 1.3x one row per statement), the same rows whatever the split; the run's
SeededUser rows and suppressed welcome-mail records from the users' keys, not their names."""

from __future__ import annotations

import sqlite3

import pytest
from django.db import connection
from django.db.models.fields import AutoFieldMixin

import seeding.inserts
from profiles.models import WelcomeMail
from profiles.receivers import WELCOME_MAIL_RECEIVER
from seeding.models import SeededUser
from tests.helpers.seeding import recorded_pks, seed
from tests.helpers.users import user_model, users

pytestmark = [
    pytest.mark.applies_if(connection.vendor == "sqlite", reason="SQLite's multi-row INSERT"),
    pytest.mark.any_user_model,
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


@pytest.fixture(name="statements")
def statements_fixture():
    """Every statement sqlite3 runs during the test, as it ran it."""
    seen: list[str] = []
    connection.ensure_connection()
    raw = connection.connection
    raw.set_trace_callback(seen.append)
    yield seen
    raw.set_trace_callback(None)


def test_the_runs_records_are_written_from_the_users_keys(statements):
    result = seed(250, mute=[WELCOME_MAIL_RECEIVER])
    # Auto keys from the span the insert reported; a UUID or a string key from the rows.
    username = connection.ops.quote_name(
        user_model()._meta.get_field(user_model().USERNAME_FIELD).column
    )
    records = [
        sql
        for sql in statements
        if sql.startswith(
            (
                f'INSERT INTO "{SeededUser._meta.db_table}"',
                f'INSERT INTO "{WelcomeMail._meta.db_table}"',
            )
        )
    ]
    assert len(records) == 6  # a SeededUser and a welcome-mail statement per batch
    assert not [sql for sql in records if username in sql]  # no user found by name
    everyone = set(users().values_list("pk", flat=True))
    assert (result.created, recorded_pks(result.run_number)) == (250, everyone)
    suppressed = WelcomeMail.objects.filter(status=WelcomeMail.Status.SUPPRESSED)
    assert set(suppressed.values_list("user_id", flat=True)) == everyone
    assert result.welcome_records_suppressed == 250


@pytest.fixture(name="user_trigger")
def user_trigger_fixture():
    """Install a trigger that adds a user of its own when a user is inserted: ``every``
    inserted user, or only the first one of the test."""
    model = user_model()
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    # Unique columns get a prefix, so the trigger's user is another user.
    values = [
        f"'trigger-' || NEW.{qn(f.column)}" if f.unique else f"NEW.{qn(f.column)}" for f in fields
    ]
    username = qn(model._meta.get_field(model.USERNAME_FIELD).column)
    installed = []

    def install(*, every: bool) -> None:
        once = f"NOT EXISTS (SELECT 1 FROM {table} WHERE {username} LIKE 'trigger-%')"
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TRIGGER seeded_twin AFTER INSERT ON {table} "
                f"WHEN NEW.{username} NOT LIKE 'trigger-%' {'' if every else f'AND {once}'} "
                f"BEGIN INSERT INTO {table} ({', '.join(qn(f.column) for f in fields)}) "
                f"VALUES ({', '.join(values)}); END"
            )
        installed.append(True)

    yield install
    if installed:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER seeded_twin")


@pytest.mark.applies_if(
    isinstance(user_model()._meta.pk, AutoFieldMixin),
    reason="the span of auto keys is for a user model with an auto key",
)
@pytest.mark.parametrize("every", [True, False], ids=["every user", "the first user"])
def test_users_a_trigger_inserts_are_not_recorded_as_the_runs(user_trigger, every):
    # The trigger's users take keys among the batch's: a span of keys is not the batch.
    user_trigger(every=every)
    result = seed(250)
    username = user_model().USERNAME_FIELD
    seeded = users().exclude(**{f"{username}__startswith": "trigger-"})
    assert users().count() == (500 if every else 251)
    assert recorded_pks(result.run_number) == set(seeded.values_list("pk", flat=True))
    assert len(recorded_pks(result.run_number)) == result.created == 250
