"""purge_seeded deletes the users seed runs recorded, and nobody who merely looks seeded."""

from __future__ import annotations

import threading

import pytest
from django.db import connections
from django.db.models.signals import pre_delete

from dbtools.locks import database_lock
from profiles.models import Profile, WelcomeMail
from profiles.receivers import WELCOME_MAIL_RECEIVER
from seeding.models import SeededUser, SeedRun
from seeding.purge import seeded_users_purge
from seeding.runs import run_lock
from tests.helpers.seeding import legacy_run, recorded_pks, seed
from tests.helpers.users import bulk_users, create_user, user_model, users

pytestmark = [pytest.mark.any_user_model, pytest.mark.django_db]


def all_pks() -> set[object]:
    return set(users().values_list("pk", flat=True))


def test_purge_deletes_exactly_the_recorded_users_never_lookalikes():
    between = []

    def real_user_between_batches(done: int, total: int) -> None:
        if done == 100:
            between.append(create_user(0, "between"))

    first = seed(300, via="bulk", on_batch=real_user_between_batches)
    email = user_model().get_email_field_name()
    lookalikes = [
        create_user(0, "seed1-bob"),
        create_user(0, "SEED1-Carol"),
        create_user(0, "Seed1-dave"),
        create_user(1, "real", **{email: "seed1-x@example.com"}),
        create_user(1, "seed99-"),  # named and addressed like run 99's first user
    ]
    seed(50, via="save")
    kept = {user.pk for user in (*between, *lookalikes)}
    seeded = recorded_pks()
    assert len(seeded) == 350 and not kept & seeded
    run_one = recorded_pks(first.run_number)
    if all(isinstance(pk, int) for pk in run_one):  # the real user sits inside the seeded range
        assert min(run_one) < between[0].pk < max(run_one)
    profiles = Profile.objects.filter(user__in=seeded).count()
    assert profiles == 50  # the receiver's, one per user saved; bulk_create sends no signal

    preview = seeded_users_purge(using="default", dry_run=True)
    assert (preview.runs, preview.users, preview.profiles) == (2, 350, profiles)
    assert all_pks() == kept | seeded

    result = seeded_users_purge(using="default", batch_size=64)
    assert (result.runs, result.users, result.profiles) == (2, 350, profiles)
    assert all_pks() == kept
    assert Profile.objects.count() == len(kept)  # the kept users keep theirs
    assert not SeedRun.objects.exists() and not SeededUser.objects.exists()


def test_runs_from_before_users_were_recorded_are_left_alone():
    legacy_run(5, users=3)
    theirs = bulk_users(3, prefix="seed5-")  # named like that run's users: never proof
    seed(20)
    result = seeded_users_purge(using="default")
    assert (result.runs, result.users, result.untracked_runs) == (1, 20, 1)
    assert all_pks() == {user.pk for user in theirs}
    assert list(SeedRun.objects.values_list("number", flat=True)) == [5]


def test_the_counts_are_of_the_rows_deleted_even_when_profiles_appear_meanwhile():
    seed(300, via="bulk")  # no profiles yet
    first_batch = set(
        SeededUser.objects.order_by("user_id").values_list("user_id", flat=True)[:100]
    )
    later = recorded_pks() - first_batch

    def backfill_meanwhile(sender, **kwargs):  # as a concurrent backfill_profiles would
        if not Profile.objects.exists():
            Profile.objects.bulk_create([Profile(user_id=pk) for pk in later])

    pre_delete.connect(backfill_meanwhile, sender=user_model(), dispatch_uid="test-backfill")
    try:
        result = seeded_users_purge(using="default", batch_size=100)
    finally:
        pre_delete.disconnect(sender=user_model(), dispatch_uid="test-backfill")
    assert (result.users, result.profiles) == (300, 200)
    assert not users().exists() and not Profile.objects.exists()


def test_a_run_in_progress_is_left_alone():
    seed(30)
    held, release = threading.Event(), threading.Event()

    def seeding_elsewhere() -> None:  # a lock of run 1 on another connection
        try:
            with database_lock(run_lock(1), using="default"):
                held.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=seeding_elsewhere)
    thread.start()
    try:
        assert held.wait(timeout=30)
        for dry_run in (True, False):
            result = seeded_users_purge(using="default", dry_run=dry_run)
            assert (result.runs, result.users, result.runs_in_progress) == (0, 0, 1)
    finally:
        release.set()
        thread.join(timeout=30)
    assert users().count() == 30
    assert seeded_users_purge(using="default").users == 30


def test_progress_reaches_the_users_to_purge_less_those_of_a_run_left_alone():
    seed(30)
    seed(50)
    held, release = threading.Event(), threading.Event()

    def seeding_elsewhere() -> None:  # run 2, purged second, is in progress elsewhere
        try:
            with database_lock(run_lock(2), using="default"):
                held.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=seeding_elsewhere)
    thread.start()
    calls: list[tuple[int, int]] = []
    try:
        assert held.wait(timeout=30)
        result = seeded_users_purge(
            using="default", batch_size=12, on_batch=lambda *call: calls.append(call)
        )
    finally:
        release.set()
        thread.join(timeout=30)
    assert (result.users, result.runs_in_progress) == (30, 1)
    assert calls == [(12, 80), (24, 80), (30, 80), (30, 30)]


def test_purge_deletes_the_seeded_users_welcome_records_and_counts_them():
    signup = create_user(0, "signup")  # its record stays
    seed(40, via="save")
    seed(30, via="bulk", mute=[WELCOME_MAIL_RECEIVER])
    seed(20, via="bulk")  # no records: nothing to delete
    preview = seeded_users_purge(using="default", dry_run=True)
    assert (preview.users, preview.welcome_mails) == (90, 70)
    assert WelcomeMail.objects.count() == 71
    result = seeded_users_purge(using="default", batch_size=25)
    assert (result.users, result.profiles, result.welcome_mails) == (90, 40, 70)
    assert list(WelcomeMail.objects.values_list("user_id", flat=True)) == [signup.pk]
