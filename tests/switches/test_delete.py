"""Switches and fast deletes: a switched-off delete receiver still listens.

Django deletes a queryset with one DELETE ("fast delete") only when no
pre_delete/post_delete receiver listens for the model; otherwise it loads the
rows first and sends the signals. A switch never disconnects the receiver, so
switching it off (or muting it) leaves the SQL exactly as when it is on.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models.signals import post_delete
from django.test.utils import CaptureQueriesContext

from profiles.models import Profile
from switches import state
from switches.muting import muted
from switches.services import receiver_switches_off, receiver_switches_on
from switches.wrapping import switchable

User = get_user_model()

pytestmark = pytest.mark.django_db

deleted: list[int] = []


@switchable
def note_profile_deleted(sender, instance, **kwargs):
    deleted.append(instance.pk)


NAME = f"{__name__}.note_profile_deleted"


@pytest.fixture
def profiles():
    deleted.clear()
    for name in ("ada", "bob", "cy"):
        User.objects.create_user(name)
    return Profile.objects.all()


def one(username: str):
    return Profile.objects.filter(pk=Profile.objects.get(user__username=username).pk)


@pytest.fixture
def delete_receiver():
    post_delete.connect(note_profile_deleted, sender=Profile)
    yield
    post_delete.disconnect(note_profile_deleted, sender=Profile)


def delete_statements(queryset) -> list[str]:
    state.switches_off("default")  # the switch is read before, not during, the delete
    with CaptureQueriesContext(connection) as queries:
        queryset.delete()
    # The shape of each statement, without the ids it names.
    return [re.sub(r"\d+", "N", q["sql"]) for q in queries.captured_queries]


def test_without_any_delete_receiver_django_fast_deletes(profiles):
    statements = delete_statements(profiles)
    assert len(statements) == 1 and statements[0].startswith("DELETE")


def test_a_switched_off_delete_receiver_changes_no_sql(profiles, delete_receiver):
    receiver_switches_off(names=[NAME], reason="", by="t", until=None, using="default")
    off = delete_statements(one("ada"))
    assert deleted == []
    receiver_switches_on(names=[NAME], using="default")
    on = delete_statements(one("bob"))
    assert len(deleted) == 1
    assert off == on
    assert on[0].startswith("SELECT")  # collected first: no fast delete either way


def test_a_muted_delete_receiver_changes_no_sql(profiles, delete_receiver):
    with muted(NAME):
        mute = delete_statements(one("ada"))
    on = delete_statements(one("bob"))
    assert mute == on
    assert len(deleted) == 1
