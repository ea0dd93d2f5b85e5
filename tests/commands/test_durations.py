"""--for DURATION: read while click parses the command line (commands/durations.py), shown as
its two largest units; through 'receivers off', a bad one exits 2 and writes nothing."""

from __future__ import annotations

import json
from datetime import timedelta

import click
import pytest
from django.utils import timezone

from commands.durations import (
    DurationError,
    DurationTooLong,
    duration_callback,
    format_duration,
    format_time_left,
    parse_duration,
)
from switches.models import ReceiverSwitch
from tests.helpers.commands import run_command

WELCOME = "profiles.receivers.send_welcome_email"
CENTURY = timedelta(days=36500)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        (" 2H ", 7200),
        ("007m", 420),
        ("36500d", 36500 * 86400),
    ],
)
def test_a_duration_is_number_unit_parts(text, seconds):
    assert parse_duration(text, longest=CENTURY) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2 hours", "'2 hours' is not a duration; use e.g. 90s, 30m, 2h, 1d, 1h30m."),
        ("", "'' is not a duration"),
        ("1w", "'1w' is not a duration"),
        ("-5m", "'-5m' is not a duration"),
        ("0m", "the duration must be longer than 0s."),
        ("0h0s", "the duration must be longer than 0s."),
    ],
)
def test_what_is_no_duration_says_what_to_type(text, message):
    with pytest.raises(DurationError) as excinfo:
        parse_duration(text, longest=CENTURY)
    assert str(excinfo.value).startswith(message)
    assert not isinstance(excinfo.value, DurationTooLong)


@pytest.mark.parametrize("text", ["9999999d", "36501d", "36500d1s", "9" * 5000 + "s"])
def test_past_the_longest_is_too_long_and_a_huge_one_is_not_echoed_whole(text):
    with pytest.raises(DurationTooLong) as excinfo:
        parse_duration(text, longest=CENTURY)
    message = str(excinfo.value)
    assert message.endswith(" is longer than 36500d.")
    shown = message.removesuffix(" is longer than 36500d.")
    assert len(shown) <= 42  # 40 characters and the quotes
    assert shown.startswith("'") and text.startswith(shown.strip("'").removesuffix("..."))


def test_the_click_callback_fails_as_a_usage_error_and_passes_the_rest_through():
    callback = duration_callback(longest=timedelta(hours=1), too_long="an hour; give less.")
    option = click.Option(["--for"])
    ctx = click.Context(click.Command("x"))
    assert callback(ctx, option, "30m") == timedelta(minutes=30)
    assert callback(ctx, option, timedelta(minutes=5)) == timedelta(minutes=5)
    assert callback(ctx, option, None) is None
    with pytest.raises(click.BadParameter, match=r"^'2h' is longer than an hour; give less\.$"):
        callback(ctx, option, "2h")
    with pytest.raises(click.BadParameter, match="is not a duration"):
        callback(ctx, option, "soon")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(90061, "1d 1h"), (3660, "1h 1m"), (59, "59s"), (0, "0s"), (7200, "2h"), (86401, "1d 1s")],
)
def test_a_duration_is_shown_as_its_two_largest_units(seconds, text):
    assert format_duration(seconds) == text


def test_time_left_rounds_up_and_stops_at_0s():
    now = timezone.now()
    assert format_time_left(now + timedelta(seconds=59.2), now=now) == "1m"
    assert format_time_left(now - timedelta(seconds=5), now=now) == "0s"


# -- through the command --


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("duration", "message"), [("2 hours", "is not a duration"), ("0m", "longer than 0s")]
)
def test_a_bad_duration_exits_2_and_writes_nothing(duration, message):
    _, err, code = run_command("receivers", "off", WELCOME, "--for", duration)
    assert code == 2 and message in err
    assert not ReceiverSwitch.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("duration", ["9999999d", "36501d", "36500d1s", "9" * 5000 + "s"])
def test_a_duration_whose_expiry_no_database_can_hold_exits_2_and_writes_nothing(duration):
    out, err, code = run_command("receivers", "off", WELCOME, "--for", duration)
    assert (out, code) == ("", 2)
    assert "is longer than the longest switch, 36500d (100 years" in err
    assert len(err) < 300  # a 5000-digit value is not echoed back whole
    assert not ReceiverSwitch.objects.exists()


@pytest.mark.django_db
def test_the_longest_duration_is_stored_and_read_back_on_this_backend():
    out, err, code = run_command("receivers", "off", WELCOME, "--for", "36500d")
    assert (err, code) == ("", 0) and "(in 36500d)" in out
    switch = ReceiverSwitch.objects.get()
    assert switch.expires_at is not None and switch.expires_at.year >= 2126
    out, _, _ = run_command("receivers", "list", "--format", "json")
    [welcome] = [r for r in json.loads(out)["receivers"] if r["name"] == WELCOME]
    assert welcome["seconds_left"] > 36499 * 86400
