"""muted(): receivers off inside one block, in this thread or task only."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from profiles.models import Profile, WelcomeMail
from switches.muting import muted
from switches.names import ReceiverNameError
from switches.state import muted_names
from tests.switches.receivers import ASYNC, SYNC

User = get_user_model()

PROFILE = "profiles.receivers.create_profile"
WELCOME = "profiles.receivers.send_welcome_email"


class Boom(Exception):
    pass


@pytest.mark.django_db
def test_a_mute_belongs_to_one_receiver(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, muted(WELCOME):
        user = User.objects.create_user("ada", "ada@example.com")
    assert Profile.objects.filter(user=user).exists()
    assert WelcomeMail.objects.get(user=user).status == "suppressed"
    assert callbacks == []  # no delivery enqueued
    with django_capture_on_commit_callbacks() as callbacks, muted(PROFILE):
        other = User.objects.create_user("bob", "bob@example.com")
    assert not Profile.objects.filter(user=other).exists()
    assert WelcomeMail.objects.get(user=other).status == "pending"
    assert len(callbacks) == 1  # its delivery, after the commit


def test_blocks_nest_and_restore_what_was_muted_before():
    assert muted_names.get() == frozenset()
    with muted(WELCOME):
        with muted(PROFILE, WELCOME):
            assert muted_names.get() == {PROFILE, WELCOME}
        assert muted_names.get() == {WELCOME}
    assert muted_names.get() == frozenset()


def test_the_same_instance_can_be_entered_twice():
    mute = muted(WELCOME)
    with mute:
        with mute:
            assert muted_names.get() == {WELCOME}
        assert muted_names.get() == {WELCOME}
    assert muted_names.get() == frozenset()


@pytest.mark.django_db
def test_state_is_restored_after_an_exception():
    with pytest.raises(Boom), muted(PROFILE):
        raise Boom
    assert muted_names.get() == frozenset()
    user = User.objects.create_user("ada")
    assert Profile.objects.filter(user=user).exists()


def test_an_unknown_name_raises_with_the_closest_names_and_mutes_nothing():
    with (
        pytest.raises(ReceiverNameError, match=r"closest: profiles\.receivers\.send_welcome_email"),
        muted("profiles.receivers.send_welcome_mail"),
    ):
        pass  # pragma: no cover
    assert muted_names.get() == frozenset()


def test_no_name_is_an_error():
    with pytest.raises(TypeError):
        muted()


@pytest.mark.django_db
def test_decorates_a_function() -> None:
    @muted(PROFILE)
    def make_user(name: str) -> Any:
        assert muted_names.get() == {PROFILE}
        return User.objects.create_user(name)

    user = make_user("ada")
    assert make_user.__name__ == "make_user"
    assert not Profile.objects.filter(user=user).exists()
    assert muted_names.get() == frozenset()


def test_decorates_a_coroutine_function() -> None:
    @muted(SYNC, ASYNC)
    async def seen() -> frozenset[str]:
        await asyncio.sleep(0)
        return muted_names.get()

    assert asyncio.run(seen()) == {SYNC, ASYNC}
    assert muted_names.get() == frozenset()


def test_muted_receivers_are_skipped_sync_and_async(signal, calls, primed):
    with muted(SYNC, ASYNC):
        responses = signal.send(sender=None)
    assert calls == []
    assert [response for _, response in responses] == [None, None]
    signal.send(sender=None)
    assert calls == ["sync", "async"]


def test_a_mute_in_one_thread_does_not_reach_another(signal, calls, primed):
    entered, release = threading.Event(), threading.Event()
    seen = {}

    def muting_thread():
        with muted(SYNC):
            signal.send(sender=None)
            seen["muting thread"] = list(calls)
            entered.set()
            release.wait(10)

    worker = threading.Thread(target=muting_thread)
    worker.start()
    try:
        assert entered.wait(10)
        calls.clear()
        assert muted_names.get() == frozenset()
        signal.send(sender=None)  # while the other thread is still inside its block
        assert calls == ["sync", "async"]
    finally:
        release.set()
        worker.join(10)
    assert seen["muting thread"] == ["async"]


def test_a_thread_started_inside_a_block_does_not_inherit_it(signal, calls, primed):
    with muted(SYNC):
        worker = threading.Thread(target=signal.send, kwargs={"sender": None})
        worker.start()
        worker.join(10)
    assert calls == ["sync", "async"]


def test_asyncio_tasks_do_not_share_mutes(signal, calls, primed):
    async def muted_task() -> list[object]:
        with muted(SYNC, ASYNC):
            await asyncio.sleep(0.01)  # the other task runs meanwhile
            return [r for _, r in await signal.asend(sender=None)]

    async def plain_task() -> list[object]:
        await asyncio.sleep(0)
        return [r for _, r in await signal.asend(sender=None)]

    async def both() -> list[list[object]]:
        return list(await asyncio.gather(muted_task(), plain_task()))

    assert asyncio.run(both()) == [[None, None], ["sync", "async"]]
    assert sorted(calls) == ["async", "sync"]
