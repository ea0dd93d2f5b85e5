"""welcome_mail_counts: the records per state in one query, and the users without one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from profiles.models import WelcomeMail
from profiles.welcome.selectors import WelcomeMailCounts, welcome_mail_counts
from tests.helpers.users import bulk_users
from tests.profiles.welcome.states import record

pytestmark = [pytest.mark.any_user_model, pytest.mark.django_db]


def test_counts_each_state_and_the_users_without_a_record(django_assert_num_queries):
    made = bulk_users(12)
    statuses = ["pending"] * 3 + ["sending"] * 2 + ["sent"] * 4 + ["suppressed", "failed"]
    for user, status in zip(made, statuses, strict=False):
        record(user, status)
    with django_assert_num_queries(2):  # one grouped query for the states, one anti-join
        counts = welcome_mail_counts(using="default")
    assert (counts.pending, counts.sending, counts.sent, counts.suppressed, counts.failed) == (
        3,
        2,
        4,
        1,
        1,
    )
    assert counts.without_record == 1
    assert counts.records == 11
    assert counts.waiting == 5


def test_the_oldest_pending_is_the_oldest_record_still_to_be_sent():
    a, b, c, d = bulk_users(4)
    record(a, "sent", age=timedelta(days=3))  # older, but sent: not waiting
    record(b, "suppressed", age=timedelta(days=2))
    record(c, "pending", age=timedelta(minutes=5))
    record(d, "sending", age=timedelta(hours=2))  # a lease still counts as waiting
    counts = welcome_mail_counts(using="default")
    oldest = WelcomeMail.objects.get(user_id=d.pk).created_at
    assert counts.oldest_pending_created_at == oldest
    now = oldest + timedelta(hours=2, seconds=1)
    assert counts.oldest_pending_age(now) == timedelta(hours=2, seconds=1)
    assert counts.overdue(timedelta(hours=2), now)
    assert not counts.overdue(timedelta(hours=3), now)


def test_nothing_waiting_has_no_age():
    [user] = bulk_users(1)
    record(user, "sent", age=timedelta(days=1))
    counts = welcome_mail_counts(using="default")
    assert counts.oldest_pending_created_at is None
    assert counts.oldest_pending_age() is None
    assert not counts.overdue(timedelta(seconds=1))


def test_an_empty_table():
    assert welcome_mail_counts(using="default") == WelcomeMailCounts(
        pending=0,
        sending=0,
        sent=0,
        suppressed=0,
        failed=0,
        without_record=0,
        oldest_pending_created_at=None,
    )


def test_an_age_is_never_negative():
    counts = WelcomeMailCounts(0, 1, 0, 0, 0, 0, timezone.now() + timedelta(seconds=30))
    assert counts.oldest_pending_age() == timedelta(0)
