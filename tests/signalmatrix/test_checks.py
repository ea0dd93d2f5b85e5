"""The raw-save check: a receiver writing rows on raw saves, probed on this project's code only."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core import checks
from django.db import models
from django.db.models.signals import post_save
from django.test.utils import isolate_apps
from django.utils import timezone

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


def profile_even_for_fixtures(sender, instance, created, using, raw=False, **kwargs):
    if created:  # forgets raw
        profile_ensure(user=instance, using=using)


@pytest.mark.django_db(transaction=True)
def test_a_receiver_writing_rows_on_raw_saves_is_a_warning_and_the_probe_leaves_no_trace():
    before = database_contents()
    post_save.connect(profile_even_for_fixtures, sender=User, dispatch_uid="test.raw")
    try:
        messages = [
            m for m in checks.run_checks(databases=["default"]) if m.id == "signalmatrix.W003"
        ]
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
    from switches.wrapping import switchable

    wrapped = switchable(profile_even_for_fixtures)
    name = f"{__name__}.profile_even_for_fixtures"
    ReceiverSwitch.objects.create(name=name, switched_off_at=timezone.now())
    post_save.connect(wrapped, sender=User, dispatch_uid="test.raw.off")
    try:
        messages = checks.run_checks(databases=["default"])
    finally:
        post_save.disconnect(sender=User, dispatch_uid="test.raw.off")
    assert [m.obj for m in messages if m.id == "signalmatrix.W003"] == [name]


def test_a_receiver_of_another_package_made_switchable_here_is_never_called(db):
    """The switch wrapper is this project's code; the receiver inside it is not, so no probe."""
    from switches.wrapping import switchable

    calls = []

    def third_party(sender, **kwargs):
        calls.append(kwargs.get("raw"))

    third_party.__module__ = "thirdparty.receivers"
    wrapped = switchable(third_party)
    post_save.connect(wrapped, sender=User, dispatch_uid="test.thirdparty.switchable")
    try:
        messages = checks.run_checks(databases=["default"])
    finally:
        post_save.disconnect(sender=User, dispatch_uid="test.thirdparty.switchable")
    assert calls == []
    assert ids(messages) == []


# -- a check never raises --


def test_a_check_that_fails_is_a_warning_naming_it_never_an_exception(db, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("something nobody foresaw\nsecond line")

    monkeypatch.setattr("signalmatrix.checks.raw_save_writers", broken)
    messages = checks.run_checks(databases=["default"])
    messages = [m for m in messages if m.id == "signalmatrix.W005"]
    assert len(messages) == 1
    assert messages[0].msg == (
        "The system check signalmatrix.W003 could not run, so it checked nothing: "
        "RuntimeError: something nobody foresaw"
    )
    assert messages[0].level == checks.WARNING
    assert "SILENCED_SYSTEM_CHECKS = ['signalmatrix.W005']" in messages[0].hint


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
