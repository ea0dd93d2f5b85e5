from __future__ import annotations

from datetime import datetime, timezone

from profiles.checks import check_welcome_mail_cutoff

SINCE = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_no_cutoff_needs_no_joined_field(settings):
    settings.WELCOME_MAIL_SINCE = None
    settings.WELCOME_MAIL_JOINED_FIELD = "nope"
    assert check_welcome_mail_cutoff() == []


def test_a_cutoff_with_the_users_joined_field_is_fine(settings):
    settings.WELCOME_MAIL_SINCE = SINCE
    assert check_welcome_mail_cutoff() == []


def test_a_cutoff_without_a_joined_field_stops_every_command(settings):
    settings.WELCOME_MAIL_SINCE = SINCE
    settings.WELCOME_MAIL_JOINED_FIELD = "nope"
    [error] = check_welcome_mail_cutoff()
    assert error.id == "profiles.E001" and error.is_serious()
    assert "WELCOME_MAIL_JOINED_FIELD" in error.msg


def test_a_cutoff_on_a_field_that_is_no_date_time_is_an_error(settings):
    settings.WELCOME_MAIL_SINCE = SINCE
    settings.WELCOME_MAIL_JOINED_FIELD = "is_active"
    [error] = check_welcome_mail_cutoff()
    assert "not a date-time field" in error.msg
