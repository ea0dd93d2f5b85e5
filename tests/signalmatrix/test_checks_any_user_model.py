"""The checks under any user model: they run, probe only this project's code, never raise.

That migrate and check in real processes exit 0 on every user model: tests/system/test_checks.py.
"""

from __future__ import annotations

import pytest
from django.core import checks
from django.db.models.signals import post_save

from profiles.models import Profile
from profiles.services import profile_ensure
from tests.helpers.users import user_model
from tests.signalmatrix.helpers import database_contents

pytestmark = pytest.mark.any_user_model

OURS = ("signalmatrix.", "switches.")


def ours(messages) -> list[str]:
    return [f"{m.id}: {m.msg}" for m in messages if m.id and m.id.startswith(OURS)]


def profile_even_for_fixtures(sender, instance, created, using, raw=False, **kwargs):
    if created:  # forgets raw
        profile_ensure(user=instance, using=using)


def test_every_check_runs_on_this_user_model_and_finds_nothing(db):
    assert ours(checks.run_checks(databases=["default"])) == []


@pytest.mark.django_db(transaction=True)
def test_the_raw_save_probe_builds_a_user_of_this_model_and_leaves_no_trace():
    before = database_contents()
    post_save.connect(profile_even_for_fixtures, sender=user_model(), dispatch_uid="test.raw.any")
    try:
        messages = checks.run_checks(databases=["default"])
    finally:
        post_save.disconnect(sender=user_model(), dispatch_uid="test.raw.any")
    assert [m.id for m in messages if m.id.startswith(OURS)] == ["signalmatrix.W003"]
    assert database_contents() == before
    assert not Profile.objects.exists()


def test_a_receiver_of_another_package_is_never_called_by_the_probe(db):
    """A check inspects: a receiver that calls an HTTP API must not run on every migrate."""
    calls = []

    def third_party(sender, **kwargs):
        calls.append(kwargs.get("raw"))

    third_party.__module__ = "thirdparty.receivers"
    post_save.connect(third_party, sender=user_model(), dispatch_uid="test.thirdparty")
    post_save.connect(third_party, dispatch_uid="test.thirdparty.any")  # every sender
    try:
        messages = checks.run_checks(databases=["default"])
    finally:
        post_save.disconnect(sender=user_model(), dispatch_uid="test.thirdparty")
        post_save.disconnect(dispatch_uid="test.thirdparty.any")
    assert calls == []
    assert ours(messages) == []
