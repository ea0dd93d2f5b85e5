from __future__ import annotations

import signal

import pytest
from django.contrib.auth import get_user_model

from profiles.models import Profile
from seeding.generator import RESERVED_DOMAINS, FakeUsers
from seeding.models import SeedRun
from tests.helpers.seeding import seed
from tests.helpers.stopping import StopAtCheck

User = get_user_model()

pytestmark = pytest.mark.django_db


def snapshot():
    return list(
        User.objects.order_by("username").values_list(
            "username", "first_name", "last_name", "email"
        )
    )


def test_same_seed_same_users_whatever_the_batch_size():
    seed(250, batch_size=7, locales=["en_US", "de_DE", "ja_JP"])
    first = snapshot()
    User.objects.all().delete()
    SeedRun.objects.all().delete()
    seed(250, batch_size=1000, locales=["en_US", "de_DE", "ja_JP"])
    assert snapshot() == first
    assert len(first) == 250


def test_generator_is_batch_size_independent():
    def users(batch_size):
        generator = FakeUsers(seed=3, run_number=1, locales=["en_US", "fr_FR"])
        return [u for batch in generator.batches(count=500, batch_size=batch_size) for u in batch]

    assert users(1) == users(13) == users(500)


def test_different_seeds_give_different_names():
    seed(50, seed=1)
    seed(50, seed=2)
    runs = list(SeedRun.objects.order_by("number"))
    names = [
        set(
            User.objects.filter(username__startswith=run.username_prefix).values_list(
                "first_name", "last_name"
            )
        )
        for run in runs
    ]
    assert names[0] != names[1]


def test_runs_never_collide_with_each_other_or_existing_rows():
    User.objects.create_user("seed1-1.someone.else", email="seed1-1.someone.else@example.com")
    User.objects.create_user("seed2-1.x", email="other@example.com")
    first = seed(300)
    second = seed(300)  # same seed again: still new, distinct users
    assert (first.run_number, second.run_number) == (3, 4)
    assert User.objects.count() == 602
    assert User.objects.values("email").distinct().count() == 602
    assert User.objects.get(username="seed1-1.someone.else").email.startswith("seed1-1")


def test_bulk_skips_receivers_and_save_runs_them():
    bulk = seed(120, via="bulk")
    saved = seed(80, via="save", count_table=True)
    assert (bulk.created, bulk.profiles_created, bulk.run_users_without_profile) == (120, 0, 120)
    assert (saved.created, saved.profiles_created, saved.run_users_without_profile) == (80, 80, 0)
    assert Profile.objects.count() == 80
    assert saved.users_without_profile == 120
    assert bulk.users_without_profile is bulk.users_without_welcome_mail is None  # not asked


def test_seeded_users_are_plain_users_at_reserved_domains():
    seed(200, locales=["en_US", "ja_JP"])
    users = User.objects.all()
    assert not users.filter(is_staff=True).exists()
    assert not users.filter(is_superuser=True).exists()
    emails = users.values_list("email", flat=True)
    assert all(email.rsplit("@", 1)[1] in RESERVED_DOMAINS for email in emails)
    assert all(not user.has_usable_password() for user in users[:10])


def test_password_is_hashed_once_and_works(monkeypatch):
    from seeding import services

    calls = []
    real = services.make_password
    monkeypatch.setattr(services, "make_password", lambda p: calls.append(p) or real(p))
    seed(30, password="s3cret-pass", batch_size=7)
    assert calls == ["s3cret-pass"]
    user = User.objects.first()
    assert user.check_password("s3cret-pass")
    assert User.objects.values("password").distinct().count() == 1


def test_dry_run_writes_nothing():
    result = seed(500, dry_run=True)
    assert result.dry_run and result.created == 0
    assert User.objects.count() == 0
    assert SeedRun.objects.count() == 0


def test_an_interrupted_run_is_resumed_to_the_uninterrupted_result():
    seed(300, batch_size=40, locales=["en_US", "fr_FR"])
    uninterrupted = snapshot()
    User.objects.all().delete()
    SeedRun.objects.all().delete()

    def interrupt_after_two_batches(done, total):
        if done >= 80:
            raise KeyboardInterrupt

    stopped = seed(
        300, batch_size=40, locales=["en_US", "fr_FR"], on_batch=interrupt_after_two_batches
    )
    assert (stopped.created, stopped.stopped, stopped.stop_signal) == (80, "signal", signal.SIGINT)
    resumed = seed(300, batch_size=70, locales=["en_US", "fr_FR"])
    assert (resumed.run_number, resumed.resumed_after, resumed.created) == (1, 80, 220)
    assert snapshot() == uninterrupted
    again = seed(300, batch_size=70, locales=["en_US", "fr_FR"])
    assert (again.run_number, again.resumed_after) == (2, 0)  # finished runs are not resumed


def test_a_stop_request_rolls_back_the_batch_in_flight_and_keeps_the_committed_ones():
    batches = []
    stop = StopAtCheck(3, signal.SIGTERM, on_check=lambda: batches.append(User.objects.count()))
    stopped = seed(300, batch_size=40, stop=stop)
    assert (stopped.created, stopped.stop_signal) == (80, signal.SIGTERM)
    assert batches == [40, 80, 120]  # read with each batch's rows inserted, before it commits
    assert User.objects.count() == 80
    assert seed(300, batch_size=40).created == 220  # resumed


def test_without_a_seed_nothing_is_resumed():
    def interrupt(done, total):
        raise KeyboardInterrupt

    first = seed(100, seed=None, on_batch=interrupt)
    second = seed(100, seed=None)
    assert first.run_number != second.run_number and second.resumed_after == 0


def test_a_batch_larger_than_one_statement_allows_is_split_within_its_transaction():
    from seeding import inserts

    result = seed(inserts._MYSQL_ROWS_PER_STATEMENT + 7, batch_size=10**6)
    assert result.created == inserts._MYSQL_ROWS_PER_STATEMENT + 7
