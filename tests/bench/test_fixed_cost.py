"""The seed_fixed_cost group: its big table built once, and put back after every repetition."""

from __future__ import annotations

import dataclasses

import pytest
from django.contrib.auth import get_user_model

from bench import registry, runner
from bench.cases import fixed_cost
from profiles.models import Profile, WelcomeMail
from seeding.models import SeededUser, SeedRun

User = get_user_model()

pytestmark = pytest.mark.django_db(transaction=True)

SIZE = 20  # the cases seed 10 users; the big table holds 3,000


def tables_now() -> dict[str, object]:
    return {
        "users": sorted(User.objects.values_list("pk", flat=True)),
        "profiles": Profile.objects.count(),
        "welcome_mails": WelcomeMail.objects.count(),
        "seeded_users": SeededUser.objects.count(),
        "seed_runs": sorted(SeedRun.objects.values_list("number", flat=True)),
    }


def big_table_case() -> registry.Case:
    [case] = [c for c in registry.all_cases() if c.name == "seed_fixed_cost_big_table"]
    return case


def test_the_big_table_is_built_once_and_every_repetition_starts_from_it_alone():
    case = big_table_case()
    built, seen = [], []

    def background(size, using):
        case.background(size, using)
        built.append(tables_now())

    def body(size, using):
        seen.append(tables_now())
        return case.body(size, using)

    watched = dataclasses.replace(case, background=background, body=body)
    [result] = runner.run_cases([watched], size=SIZE, repeat=2, using="default")

    assert result.size == 10
    [background_tables] = built  # once, for the warm-up and both timed repetitions
    users = fixed_cost.BACKGROUND_FACTOR * result.size
    assert len(background_tables["users"]) == users
    assert background_tables["profiles"] == background_tables["welcome_mails"] == users
    assert background_tables["seeded_users"] == users
    assert seen == [background_tables] * 3
    # The last repetition's teardown too: only the background is left.
    assert tables_now() == background_tables


def test_the_teardown_removes_the_measured_run_and_nothing_else():
    case = big_table_case()
    case.background(10, "default")
    before = tables_now()
    assert case.body(10, "default") == 10
    assert len(tables_now()["users"]) == len(before["users"]) + 10

    case.teardown(10, "default")

    assert tables_now() == before


def test_the_empty_table_case_starts_from_an_empty_table():
    [reference] = [c for c in registry.all_cases() if c.group == fixed_cost.GROUP and c.reference]
    seen = []

    def body(size, using):
        seen.append(User.objects.count())
        return reference.body(size, using)

    watched = dataclasses.replace(reference, body=body)
    runner.run_cases([watched], size=SIZE, repeat=2, using="default")

    assert reference.background is None
    assert seen == [0, 0, 0]
