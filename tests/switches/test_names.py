"""Receiver names as typed: checked, duplicates dropped, the closest names suggested."""

from __future__ import annotations

import pytest

from switches.names import (
    ReceiverNameError,
    closest_names,
    project_packages,
    resolve_names,
    top_level_package,
)
from tests.switches.receivers import SYNC


def test_resolve_names_keeps_order_and_drops_duplicates():
    assert resolve_names([SYNC, "profiles.receivers.create_profile", SYNC]) == [
        SYNC,
        "profiles.receivers.create_profile",
    ]
    assert resolve_names(["gone.receiver"], also={"gone.receiver"}) == ["gone.receiver"]


def test_resolve_names_reports_every_bad_name_with_suggestions():
    with pytest.raises(ReceiverNameError) as excinfo:
        resolve_names(["send_welcome_email", "profiles.receivers.create_profil", "nothing.like.it"])
    error = excinfo.value
    assert error.unknown["send_welcome_email"] == ["profiles.receivers.send_welcome_email"]
    assert error.unknown["profiles.receivers.create_profil"][0] == (
        "profiles.receivers.create_profile"
    )
    assert error.unknown["nothing.like.it"] == []
    message = str(error)
    assert "unknown receiver 'send_welcome_email' (closest: " in message
    assert message.endswith("'manage.py receivers list' shows every receiver.")


def test_closest_names_prefers_the_same_function_name():
    candidates = {"a.receivers.notify", "b.receivers.notify", "a.receivers.notice"}
    assert closest_names("c.receivers.notify", candidates)[:2] == [
        "a.receivers.notify",
        "b.receivers.notify",
    ]
    assert closest_names("notify", candidates)[:2] == ["a.receivers.notify", "b.receivers.notify"]


def test_project_packages_are_the_apps_and_tests_here_not_what_is_installed():
    packages = project_packages()
    assert {"profiles", "switches", "signalmatrix", "commands", "tests"} <= packages
    assert not {"django", "click", "asgiref"} & packages


def test_the_top_level_package_of_a_dotted_name():
    assert top_level_package("profiles.receivers.create_profile") == "profiles"
    assert top_level_package("profiles") == "profiles"
