"""Groups ``profile_receiver`` and ``receiver_statement``: each case runs the statement it
says it runs (the range statement before, one row now), and writes every row.

(tests/bench/test_smoke.py runs every case once more, through the renderers.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from bench import registry, runner
from bench.cases import receiver
from profiles import sql
from profiles.models import Profile, WelcomeMail

User = get_user_model()

pytestmark = pytest.mark.django_db(transaction=True)

SIZE = 30

# How each case writes the rows of each model: one row, the range statement, or none.
FORMS = {
    "receiver_range_statements": {Profile: "range", WelcomeMail: "range"},
    "receiver_one_row_profile": {Profile: "one row", WelcomeMail: "range"},
    "receiver_one_row": {Profile: "one row", WelcomeMail: "one row"},
    "receiver_create_loop": {Profile: "one row", WelcomeMail: "one row"},
    "statement_range_profile": {Profile: "range", WelcomeMail: None},
    "statement_one_row_profile": {Profile: "one row", WelcomeMail: None},
    "statement_range_welcome": {Profile: None, WelcomeMail: "range"},
    "statement_one_row_welcome": {Profile: None, WelcomeMail: "one row"},
}


@contextmanager
def inserts_seen() -> Iterator[dict[str, list[str]]]:
    """The INSERT statements into each table, as the connection sends them."""
    seen: dict[str, list[str]] = {}

    def record(execute, sql, params, many, context):
        if match := re.match(r'INSERT (?:IGNORE )?INTO [`"]?(\w+)', sql):
            seen.setdefault(match[1], []).append(sql)
        return execute(sql, params, many, context)

    with connections["default"].execute_wrapper(record):
        yield seen


def form(statements: list[str]) -> str | None:
    if not statements:
        return None
    [kind] = {"range" if "SELECT" in s else "one row" for s in statements}
    return kind


def group_cases(group: str) -> list[registry.Case]:
    return [c for c in registry.all_cases() if c.group == group]


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.name)
        for g in (receiver.RECEIVER, receiver.STATEMENT)
        for c in group_cases(g)
    ],
)
def test_each_case_runs_its_statement_and_writes_a_row_per_user(case):
    with inserts_seen() as seen:
        [result] = runner.run_cases([case], size=SIZE, repeat=1, using="default")

    for model, expected in FORMS[case.name].items():
        assert form(seen.get(model._meta.db_table, [])) == expected, model
        # The last repetition's rows stay: a row per user, where the case writes them.
        written = model._default_manager.count()
        assert written == (result.size if expected else 0), model
    assert User.objects.count() == result.size


def test_every_case_of_the_groups_has_its_statement_forms_said():
    names = {c.name for g in (receiver.RECEIVER, receiver.STATEMENT) for c in group_cases(g)}
    assert names == set(FORMS)


def test_the_statement_before_is_swapped_in_for_the_case_only():
    with receiver.range_statement_for(Profile):
        assert sql.insert_missing_for_user is not receiver.one_row_insert
    assert sql.insert_missing_for_user is receiver.one_row_insert
