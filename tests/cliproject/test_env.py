"""cliproject/env.py in-process: typed settings from a mapping, errors naming the variable."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from cliproject.env import LONGEST_TIMEOUT_SECONDS, env_bool, env_int, secret_key


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[("1", True), ("TRUE", True), (" yes ", True), ("on", True)],
        *[("0", False), ("false", False), ("No", False), ("off", False), ("", False)],
    ],
)
def test_env_bool_reads_the_usual_spellings(value, expected):
    assert env_bool("DEBUG", not expected, environ={"DEBUG": value}) is expected


def test_env_bool_defaults_when_unset_and_refuses_anything_else():
    assert env_bool("DEBUG", True, environ={}) is True
    with pytest.raises(ImproperlyConfigured, match=r"^DEBUG must be a boolean \(1/0"):
        env_bool("DEBUG", True, environ={"DEBUG": "perhaps"})


def test_env_int_defaults_when_unset_or_empty():
    assert env_int("N", 5, minimum=0, environ={}) == 5
    assert env_int("N", 5, minimum=0, environ={"N": ""}) == 5


@pytest.mark.parametrize(
    ("value", "maximum", "message"),
    [
        ("abc", None, "N must be a whole number of at least 1."),
        ("1.5", None, "N must be a whole number of at least 1."),
        ("0", None, "N must be a whole number of at least 1."),
        ("11", 10, "N must be a whole number from 1 to 10."),
    ],
)
def test_env_int_refuses_what_is_not_a_whole_number_in_range(value, maximum, message):
    with pytest.raises(ImproperlyConfigured) as refused:
        env_int("N", 5, minimum=1, maximum=maximum, environ={"N": value})
    assert str(refused.value) == message


def test_env_int_accepts_its_bounds():
    assert env_int("N", 5, minimum=1, maximum=10, environ={"N": "1"}) == 1
    assert env_int("N", 5, minimum=1, maximum=10, environ={"N": "10"}) == 10


def test_the_longest_timeout_fits_postgresql_milliseconds():
    assert LONGEST_TIMEOUT_SECONDS * 1000 <= 2**31 - 1 < (LONGEST_TIMEOUT_SECONDS + 1) * 1000


def test_secret_key_is_required_only_with_debug_off():
    assert secret_key(debug=False, environ={"SECRET_KEY": "k"}) == "k"
    assert secret_key(debug=True, environ={}).startswith("django-insecure-")
    with pytest.raises(ImproperlyConfigured, match=r"^SECRET_KEY must be set"):
        secret_key(debug=False, environ={"SECRET_KEY": ""})
