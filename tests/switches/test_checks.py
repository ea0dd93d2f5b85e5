"""The switches' checks: a setting naming no receiver, a stale switch, a receiver connected
twice; and a check that fails is a warning, never an exception."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core import checks
from django.db.models.signals import post_save
from django.utils import timezone

from profiles import receivers
from switches.models import ReceiverSwitch

User = get_user_model()


def ids(messages) -> list[str]:
    return [m.id for m in messages if m.id.startswith("switches.")]


def test_the_project_passes_every_check(db):
    assert ids(checks.run_checks(databases=["default"])) == []


def test_database_checks_need_a_database_to_run():
    """Before every command (no --database) they must not query: this test has no database."""
    assert ids(checks.run_checks()) == []


def test_a_setting_naming_no_connected_receiver_is_a_warning(settings):
    settings.RECEIVER_SWITCHES_EXTRA = ["somewhere.receivers.missing"]
    warnings = [m for m in checks.run_checks() if m.id == "switches.W001"]
    assert len(warnings) == 1
    assert "somewhere.receivers.missing" in warnings[0].msg


@pytest.mark.django_db
def test_a_switch_for_a_receiver_that_no_longer_exists_is_a_warning():
    ReceiverSwitch.objects.create(
        name="profiles.receivers.renamed_away", switched_off_at=timezone.now()
    )
    ReceiverSwitch.objects.create(
        name=receivers.__name__ + ".send_welcome_email", switched_off_at=timezone.now()
    )
    messages = [m for m in checks.run_checks(databases=["default"]) if m.id == "switches.W003"]
    assert len(messages) == 1
    assert "'profiles.receivers.renamed_away'" in messages[0].msg
    assert "receivers on profiles.receivers.renamed_away --database default" in messages[0].hint
    assert messages[0].level == checks.WARNING


def test_a_receiver_connected_twice_is_a_warning():
    post_save.connect(receivers.create_profile, sender=User, dispatch_uid="a.second.uid")
    try:
        messages = [m for m in checks.run_checks() if m.id == "switches.W004"]
    finally:
        post_save.disconnect(sender=User, dispatch_uid="a.second.uid")
    assert len(messages) == 1
    assert messages[0].msg.startswith(
        "profiles.receivers.create_profile is connected 2 times to post_save for auth.User"
    )
    assert "dispatch_uid" in messages[0].hint
    assert ids(checks.run_checks()) == []  # disconnected again


def test_ready_running_twice_connects_nothing_twice():
    apps.get_app_config("profiles").ready()
    assert ids(checks.run_checks()) == []


def test_a_receiver_of_another_package_connected_twice_is_not_this_checks_business():
    def elsewhere(sender, **kwargs):
        pass

    elsewhere.__module__ = "thirdparty.receivers"
    post_save.connect(elsewhere, sender=User, dispatch_uid="third.1")
    post_save.connect(elsewhere, sender=User, dispatch_uid="third.2")
    try:
        assert ids(checks.run_checks()) == []
    finally:
        post_save.disconnect(sender=User, dispatch_uid="third.1")
        post_save.disconnect(sender=User, dispatch_uid="third.2")


# -- a check never raises --


def broken(*args, **kwargs):
    raise RuntimeError("something nobody foresaw\nsecond line")


@pytest.mark.parametrize(
    ("target", "check_id"),
    [
        ("switches.checks.extra_names", "switches.W001"),
        ("switches.checks.switchable_names", "switches.W003"),
        ("switches.checks.project_packages", "switches.W004"),
    ],
)
def test_a_check_that_fails_is_a_warning_naming_it_never_an_exception(
    db, monkeypatch, target, check_id
):
    monkeypatch.setattr(target, broken)
    messages = checks.run_checks(databases=["default"])
    messages = [m for m in messages if m.id == "switches.W002"]
    assert len(messages) == 1
    assert messages[0].msg == (
        f"The system check {check_id} could not run, so it checked nothing: "
        "RuntimeError: something nobody foresaw"
    )
    assert messages[0].level == checks.WARNING
    assert "SILENCED_SYSTEM_CHECKS = ['switches.W002']" in messages[0].hint


def test_checks_sharing_a_failing_reader_each_say_so(monkeypatch):
    def gone():
        raise KeyError("gone")

    monkeypatch.setattr("switches.checks.connected_receivers", gone)
    messages = [m for m in checks.run_checks() if m.id == "switches.W002"]
    assert sorted(m.msg.split(" could not run")[0] for m in messages) == [
        "The system check switches.W001",
        "The system check switches.W004",
    ]
    assert all("KeyError: 'gone'" in m.msg for m in messages)
