"""SIGNAL_AUDIT=warn|error in-process: the mode read and checked, warnings at the write's
line, errors that roll the write back, and nothing left installed when off.

tests/system/test_signalaudit_processwide.py runs the same through manage.py.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.backends.signals import connection_created

from signalaudit import SignalSkipWarning, detector, processwide

User = get_user_model()

RECEIVERS = "profiles.receivers.create_profile, profiles.receivers.send_welcome_email"


@pytest.fixture
def mode() -> Iterator[None]:
    """Whatever a test switches on is off again after it."""
    yield
    processwide.enable("off")


def uids_connected() -> list[object]:
    # Signal.receivers entries start with (dispatch_uid or receiver id, sender id).
    return [entry[0][0] for entry in connection_created.receivers]


def next_line() -> int:
    """The line after the caller's: where the write under test stands."""
    return sys._getframe(1).f_lineno + 1


@pytest.mark.parametrize(
    ("setting", "environ", "expected"),
    [
        (None, {}, "off"),
        ("", {"SIGNAL_AUDIT": ""}, "off"),
        (None, {"SIGNAL_AUDIT": "warn"}, "warn"),
        (None, {"SIGNAL_AUDIT": " ERROR "}, "error"),
        ("off", {"SIGNAL_AUDIT": "error"}, "off"),  # the setting wins
        ("warn", {}, "warn"),
    ],
)
def test_mode_from_the_setting_else_the_environment(setting, environ, expected):
    assert processwide.mode_from(setting, environ) == expected


@pytest.mark.parametrize("value", ["on", "true", "1", "warning", "raise"])
def test_an_invalid_mode_names_the_variable_and_the_choices(value):
    with pytest.raises(ImproperlyConfigured) as caught:
        processwide.mode_from(None, {"SIGNAL_AUDIT": value})
    assert str(caught.value) == "SIGNAL_AUDIT must be off, warn or error (or unset)."


def test_ready_stops_start_up_on_an_invalid_setting(settings, mode):
    settings.SIGNAL_AUDIT = "loud"
    with pytest.raises(ImproperlyConfigured, match="SIGNAL_AUDIT must be"):
        apps.get_app_config("signalaudit").ready()
    assert not detector.active()


def test_ready_switches_the_setting_on(settings, mode):
    settings.SIGNAL_AUDIT = "warn"
    apps.get_app_config("signalaudit").ready()
    assert processwide.current_mode() == "warn"
    assert detector.active()


@pytest.mark.django_db
def test_off_leaves_nothing_installed(mode):
    connection.ensure_connection()
    processwide.enable("warn")
    assert detector._audited_execute in connection.execute_wrappers
    assert detector._UID in uids_connected()

    processwide.enable("off")

    assert not detector.active()
    assert detector._audited_execute not in connection.execute_wrappers
    assert detector._UID not in uids_connected()


@pytest.mark.django_db
def test_warn_attributes_the_warning_to_the_line_of_the_write(mode):
    processwide.enable("warn")

    with pytest.warns(SignalSkipWarning) as caught:
        line = next_line()
        User.objects.bulk_create([User(username="a"), User(username="b")])

    [warning] = caught.list
    assert (warning.filename, warning.lineno) == (__file__, line)
    assert str(warning.message).startswith("auth.User bulk_create (")
    assert str(warning.message).endswith(
        f"at {os.path.relpath(__file__)}:{line} skipped {RECEIVERS}"
    )
    assert User.objects.count() == 2  # warn writes as usual


@pytest.mark.django_db
def test_warn_says_nothing_for_save_and_create(mode):
    processwide.enable("warn")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SignalSkipWarning)
        User(username="saved").save()
        User.objects.create(username="created")
    assert User.objects.count() == 2


@pytest.mark.django_db
def test_warn_follows_ordinary_filters(mode):
    processwide.enable("warn")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=SignalSkipWarning)
        with pytest.raises(SignalSkipWarning), transaction.atomic():
            User.objects.bulk_create([User(username="a")])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=SignalSkipWarning)
        User.objects.bulk_create([User(username="b")])
    assert list(User.objects.values_list("username", flat=True)) == ["b"]


@pytest.mark.django_db
def test_error_raises_whatever_the_filters_and_the_transaction_rolls_back(mode):
    processwide.enable("error")
    User.objects.create(username="kept")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        update = f"auth.User QuerySet.update .* {RECEIVERS}"
        with pytest.raises(SignalSkipWarning, match=update), transaction.atomic():
            User.objects.filter(username="kept").update(first_name="changed")

    assert User.objects.get().first_name == ""


@pytest.mark.django_db
def test_switching_modes_keeps_one_sink(mode):
    processwide.enable("warn")
    processwide.enable("error")
    processwide.enable("error")
    assert len(detector._sinks) == 1
    assert processwide.current_mode() == "error"
    processwide.enable("warn")
    with pytest.warns(SignalSkipWarning):
        User.objects.bulk_create([User(username="a")])


def test_enable_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="mode must be one of off, warn, error"):
        processwide.enable("loud")
