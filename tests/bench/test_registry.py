from __future__ import annotations

import pytest

from bench import registry


def names(cases):
    return [c.name for c in cases]


def test_no_pattern_selects_every_case_reference_first_in_each_group():
    cases = registry.select([])
    assert names(cases) == names(registry.all_cases())
    assert cases[0].reference


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("users_save_loop", ["users_raw_driver", "users_save_loop"]),
        ("users_save", ["users_raw_driver", "users_save_loop"]),
        ("users_bulk_create", ["users_raw_driver", "users_bulk_create"]),
        (
            "users_bulk",
            ["users_raw_driver", "users_bulk_create", "users_bulk_create_pregenerated"],
        ),
        ("*factory*", ["users_raw_driver", "users_factory_boy"]),
        ("insert_users", [c.name for c in registry.all_cases() if c.group == "insert_users"]),
        ("backfill_*", [c.name for c in registry.all_cases() if c.group == "backfill_profiles"]),
    ],
)
def test_pattern_matches_name_or_prefix_or_glob_and_brings_the_reference(pattern, expected):
    assert names(registry.select([pattern])) == expected


def test_patterns_add_up():
    assert names(registry.select(["users_save_loop", "users_bulk_create"])) == [
        "users_raw_driver",
        "users_bulk_create",
        "users_save_loop",
    ]


def test_unknown_pattern_names_the_known_cases():
    with pytest.raises(registry.UnknownCase, match="'nope'; known cases: users_raw_driver"):
        registry.select(["nope"])


def test_a_name_registers_once():
    with pytest.raises(ValueError, match="registered twice"):
        registry.case("users_raw_driver", group="insert_users")(lambda size, using: size)


def test_slow_cases_run_on_a_fraction_of_the_size():
    case = registry.Case(name="slow", group="g", body=lambda size, using: size, size_divisor=10)
    assert case.size_for(20000) == 2000
    assert case.size_for(5) == 1


def test_a_background_needs_a_teardown():
    # Otherwise each repetition would start from the rows the one before wrote.
    with pytest.raises(ValueError, match="has a background but no teardown"):
        registry.Case(
            name="piling_up",
            group="g",
            body=lambda size, using: size,
            background=lambda size, using: None,
        )
