"""Which namespace a new seed run takes: one index probe, whatever the table holds."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from seeding.runs import _namespace_taken
from seeding.userfields import user_columns
from tests.helpers.seeding import required_field_values
from tests.helpers.users import create_user, user_model

pytestmark = [pytest.mark.any_user_model, pytest.mark.django_db]


def columns():
    return user_columns(password="!", joined=timezone.now(), field_values=required_field_values())


def taken(number: int) -> bool:
    return _namespace_taken(number, columns(), using="default")


def user_named(value: str, i: int) -> None:
    """A user whose USERNAME_FIELD (unique under every user model here) is ``value``."""
    create_user(i, **{user_model().USERNAME_FIELD: value})


@pytest.mark.parametrize("number", [2, 9, 19, 99])
def test_a_name_in_the_namespace_takes_it_and_its_neighbours_do_not(number):
    # Neighbours in the index's range ["seedN-", "seedM"): other runs' and other names.
    for i, value in enumerate([f"seed{number}0-1.a.b", f"seed{number}", f"seed{number}.x"]):
        user_named(value, i)
    user_named(f"seed{number + 1}-1.a.b", 3)
    assert not taken(number)
    user_named(f"seed{number}-1.a.b", 4)
    assert taken(number)


def test_a_name_differing_in_case_takes_the_namespace_where_the_unique_index_ignores_case():
    user_named("SEED2-1.a.b", 0)
    # MariaDB's _ci collations would refuse "seed2-1.a.b" beside it; SQLite's and
    # PostgreSQL's byte-wise indexes here would not.
    assert taken(2) == (connection.vendor == "mysql")


def test_a_field_without_a_unique_index_never_takes_a_namespace():
    model = user_model()
    email = model._meta.get_field(model.get_email_field_name())
    create_user(0, "other", **{email.name: "seed2-1.a.b@example.com"})
    assert taken(2) == email.unique


def test_the_check_is_a_range_of_a_unique_index():
    with CaptureQueriesContext(connection) as queries:
        taken(2)
    [query] = queries.captured_queries
    sql = query["sql"]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The question is whether an index can serve it, not what a tiny table prefers.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {sql}")
            plan = " ".join(row[0] for row in cursor.fetchall())
            assert "Index" in plan and "Seq Scan" not in plan, plan
        elif connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
            plan = " ".join(row[-1] for row in cursor.fetchall())
            assert "INDEX" in plan and ">?" in plan, plan
        else:
            cursor.execute(f"EXPLAIN {sql}")
            [row] = cursor.fetchall()
            access = row[3]
            assert access == "range", row
