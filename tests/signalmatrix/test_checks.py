"""The checks: a stale switch, a receiver connected twice, a receiver writing on raw saves."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core import checks
from django.db import models
from django.db.models.signals import post_save
from django.test.utils import isolate_apps
from django.utils import timezone

from profiles import receivers
from profiles.models import Profile
from profiles.services import profile_ensure
from switches.models import ReceiverSwitch
from tests.signalmatrix.helpers import database_contents

User = get_user_model()


def ids(messages) -> list[str]:
    return [m.id for m in messages if m.id.startswith("signalmatrix.")]


def test_the_project_passes_every_check(db):
    assert ids(checks.run_checks(databases=["default"])) == []


def test_database_checks_need_a_database_to_run():
    """Before every command (no --database) they must not query: this test has no database."""
    assert ids(checks.run_checks()) == []


@pytest.mark.django_db
def test_a_switch_for_a_receiver_that_no_longer_exists_is_a_warning():
    ReceiverSwitch.objects.create(name="profiles.receivers.renamed_away",
                                  switched_off_at=timezone.now())  # fmt: skip
    ReceiverSwitch.objects.create(name=receivers.__name__ + ".send_welcome_email",
                                  switched_off_at=timezone.now())  # fmt: skip
    messages = [m for m in checks.run_checks(databases=["default"])
                if m.id == "signalmatrix.W001"]  # fmt: skip
    assert len(messages) == 1
    assert "'profiles.receivers.renamed_away'" in messages[0].msg
    assert "receivers on profiles.receivers.renamed_away --database default" in messages[0].hint
    assert messages[0].level == checks.WARNING


def test_a_receiver_connected_twice_is_a_warning():
    post_save.connect(receivers.create_profile, sender=User, dispatch_uid="a.second.uid")
    try:
        messages = [m for m in checks.run_checks() if m.id == "signalmatrix.W002"]
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


def profile_even_for_fixtures(sender, instance, created, using, raw=False, **kwargs):
    if created:  # forgets raw
        profile_ensure(user=instance, using=using)


@pytest.mark.django_db(transaction=True)
def test_a_receiver_writing_rows_on_raw_saves_is_a_warning_and_the_probe_leaves_no_trace():
    before = database_contents()
    post_save.connect(profile_even_for_fixtures, sender=User, dispatch_uid="test.raw")
    try:
        messages = [m for m in checks.run_checks(databases=["default"])
                    if m.id == "signalmatrix.W003"]  # fmt: skip
    finally:
        post_save.disconnect(sender=User, dispatch_uid="test.raw")
    assert len(messages) == 1
    assert messages[0].msg.startswith(
        f"{__name__}.profile_even_for_fixtures (post_save) writes rows to profiles_profile"
    )
    assert "raw is True" in messages[0].hint
    assert database_contents() == before
    assert not Profile.objects.exists()


@pytest.mark.django_db
def test_a_switched_off_receiver_is_still_probed_for_raw_saves():
    """The check is about the code: a receiver off today may be on tomorrow."""
    from switches.registry import switchable

    wrapped = switchable(profile_even_for_fixtures)
    name = f"{__name__}.profile_even_for_fixtures"
    ReceiverSwitch.objects.create(name=name, switched_off_at=timezone.now())
    post_save.connect(wrapped, sender=User, dispatch_uid="test.raw.off")
    try:
        messages = checks.run_checks(databases=["default"])
    finally:
        post_save.disconnect(sender=User, dispatch_uid="test.raw.off")
    assert [m.obj for m in messages if m.id == "signalmatrix.W003"] == [name]


def test_database_checks_are_silent_on_a_database_that_is_not_migrated(manage, tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    result = manage("check", "--database", "default", env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
    migrated = manage("migrate", "-v", "0", env={"DATABASE_URL": url})
    assert migrated.returncode == 0, migrated.stderr


# -- a check never raises --


@pytest.mark.parametrize(
    ("target", "check_id"),
    [
        ("signalmatrix.checks.switchable_names", "signalmatrix.W001"),
        ("signalmatrix.checks.connected_receivers", "signalmatrix.W002"),
        ("signalmatrix.checks.raw_save_writers", "signalmatrix.W003"),
    ],
)
def test_a_check_that_fails_is_a_warning_naming_it_never_an_exception(
    db, monkeypatch, target, check_id
):
    def broken(*args, **kwargs):
        raise RuntimeError("something nobody foresaw\nsecond line")

    monkeypatch.setattr(target, broken)
    messages = checks.run_checks(databases=["default"])
    messages = [m for m in messages if m.id == "signalmatrix.W005"]
    assert len(messages) == 1
    assert messages[0].msg == (
        f"The system check {check_id} could not run, so it checked nothing: "
        "RuntimeError: something nobody foresaw"
    )
    assert messages[0].level == checks.WARNING
    assert "SILENCED_SYSTEM_CHECKS = ['signalmatrix.W005']" in messages[0].hint


def test_a_switches_check_that_fails_is_a_warning_too(monkeypatch):
    def broken():
        raise KeyError("gone")

    monkeypatch.setattr("switches.checks.registry.connected_receivers", broken)
    [message] = [m for m in checks.run_checks() if m.id == "switches.W002"]
    assert message.msg.startswith("The system check switches.W001 could not run")
    assert "KeyError: 'gone'" in message.msg


@isolate_apps("signalmatrix")
def test_a_user_model_no_throwaway_user_can_be_built_for_is_a_warning_of_its_own(db, monkeypatch):
    """W003 cannot probe a model with a required relation: W004 says so, and why."""

    class Team(models.Model):
        class Meta:
            app_label = "signalmatrix"

        def __str__(self) -> str:
            return "team"

    class TeamUser(AbstractBaseUser):
        email = models.EmailField(unique=True)
        team = models.ForeignKey(Team, on_delete=models.CASCADE)
        USERNAME_FIELD = "email"

        class Meta:
            app_label = "signalmatrix"

    monkeypatch.setattr("signalmatrix.services.get_user_model", lambda: TeamUser)
    post_save.connect(profile_even_for_fixtures, sender=TeamUser, dispatch_uid="test.team")
    try:
        messages = ids_and_messages(checks.run_checks(databases=["default"]))
    finally:
        post_save.disconnect(sender=TeamUser, dispatch_uid="test.team")
    [(check_id, message)] = messages
    assert check_id == "signalmatrix.W004"
    assert "cannot check the receivers of" in message
    assert "signalmatrix.TeamUser.team is a required relation to signalmatrix.Team" in message


def ids_and_messages(messages) -> list[tuple[str, str]]:
    return [(m.id, m.msg) for m in messages if m.id.startswith("signalmatrix.")]
