"""welcome_mails_sync and welcome_mails_suppress, the services: records made set-based.

The command's output and exit codes are tests/commands/test_welcome_mails_sync.py;
its real processes (the lock, SIGTERM) tests/system/test_welcome_sync.py.
"""

from __future__ import annotations

import queue
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.db import connection, connections
from django.utils import timezone

from dbtools.errors import ConfigurationError, UsageError
from profiles import sql
from profiles.backfill import profiles_backfill
from profiles.models import Profile, WelcomeMail
from profiles.selectors import users_without_welcome_mail
from profiles.sharding import Shard
from profiles.welcome.joined import cutoff_reason
from profiles.welcome.records import pending_values, record_new_user
from profiles.welcome.sync import (
    sync_preview,
    sync_target,
    welcome_mails_suppress,
    welcome_mails_sync,
)
from tests.helpers.locking import other_connection, session_id, wait_until_waiting
from tests.helpers.stopping import StopAtCheck
from tests.helpers.users import bulk_users, users
from tests.profiles.coverage import users_with_gaps

pytestmark = pytest.mark.django_db

CUTOFF = datetime(2024, 6, 1, tzinfo=dt_timezone.utc)


@pytest.fixture(autouse=True)
def no_cutoff(settings):
    """No WELCOME_MAIL_SINCE unless a test sets one (the environment may have one)."""
    settings.WELCOME_MAIL_SINCE = None


def sync(**kwargs):
    kwargs.setdefault("batch_size", 7)
    return welcome_mails_sync(using="default", **kwargs)


def joined(made, when):
    """Say that ``made`` users joined at ``when``."""
    users().filter(pk__in=[u.pk for u in made]).update(date_joined=when)


def statuses():
    return dict(WelcomeMail.objects.values_list("user_id", "status"))


def assert_every_user_has_exactly_one_record():
    every = set(users().values_list("pk", flat=True))
    assert set(WelcomeMail.objects.values_list("user_id", flat=True)) == every
    assert WelcomeMail.objects.count() == len(every)


def test_bulk_created_users_get_pending_records_and_no_mail(mailoutbox):
    bulk_users(30)
    result = sync()
    assert (result.created, result.pending, result.suppressed) == (30, 30, 0)
    assert result.batches == 5 and result.stopped is None and result.cutoff is None
    assert set(statuses().values()) == {WelcomeMail.Status.PENDING}
    record = WelcomeMail.objects.first()
    assert (record.attempts, record.reason, record.sent_at, record.message_id) == (0, "", None, "")
    assert mailoutbox == []
    assert users_without_welcome_mail(using="default").in_shard == 0


def test_a_second_run_finds_nothing_to_do():
    bulk_users(10)
    assert sync().created == 10
    again = sync()
    assert (again.created, again.pending, again.suppressed) == (0, 0, 0)
    assert WelcomeMail.objects.count() == 10


def test_it_creates_welcome_mail_records_only_not_profiles():
    bulk_users(10)
    sync()
    assert Profile.objects.count() == 0
    profiles_backfill(using="default", batch_size=7)  # the other target, same machinery
    assert Profile.objects.count() == WelcomeMail.objects.count() == 10


def test_records_the_receiver_made_are_left_as_they_are():
    made = bulk_users(20)
    record_new_user(user=made[3], using="default", suppressed_reason="receiver off (by ops)")
    record_new_user(user=made[11], using="default")
    WelcomeMail.objects.filter(user_id=made[11].pk).update(status=WelcomeMail.Status.SENT)
    result = sync()
    assert result.created == 18
    kept = WelcomeMail.objects.get(user_id=made[3].pk)
    assert (kept.status, kept.reason) == (WelcomeMail.Status.SUPPRESSED, "receiver off (by ops)")
    assert WelcomeMail.objects.get(user_id=made[11].pk).status == WelcomeMail.Status.SENT
    assert_every_user_has_exactly_one_record()


def test_users_who_joined_before_the_cutoff_get_a_suppressed_record(settings):
    settings.WELCOME_MAIL_SINCE = CUTOFF
    old, new = bulk_users(12, "old"), bulk_users(9, "new")
    joined(old, CUTOFF - timedelta(microseconds=1))
    joined(new[:1], CUTOFF)  # at the cutoff: mailed
    joined(new[1:], CUTOFF + timedelta(days=3))
    result = sync(batch_size=5)
    assert (result.created, result.pending, result.suppressed) == (21, 9, 12)
    assert result.cutoff == CUTOFF
    suppressed = WelcomeMail.objects.filter(status=WelcomeMail.Status.SUPPRESSED)
    assert set(suppressed.values_list("user_id", flat=True)) == {u.pk for u in old}
    assert set(suppressed.values_list("reason", flat=True)) == {cutoff_reason(CUTOFF)}
    pending = WelcomeMail.objects.filter(status=WelcomeMail.Status.PENDING)
    assert set(pending.values_list("user_id", flat=True)) == {u.pk for u in new}
    assert set(pending.values_list("reason", flat=True)) == {""}


def test_joined_since_overrides_the_setting(settings):
    settings.WELCOME_MAIL_SINCE = CUTOFF
    made = bulk_users(10)
    joined(made[:4], CUTOFF + timedelta(days=1))
    joined(made[4:], CUTOFF + timedelta(days=10))
    since = CUTOFF + timedelta(days=5)
    result = sync(joined_since=since)
    assert (result.pending, result.suppressed, result.cutoff) == (6, 4, since)
    assert set(
        WelcomeMail.objects.filter(status=WelcomeMail.Status.SUPPRESSED).values_list(
            "reason", flat=True
        )
    ) == {cutoff_reason(since)}


def test_without_a_cutoff_the_joined_field_is_never_read(settings):
    """As for a user model without the field: no cutoff works; a cutoff is a config error."""
    settings.WELCOME_MAIL_JOINED_FIELD = "joined_at"  # no such field
    bulk_users(8)
    assert sync().created == 8
    bulk_users(2, start=8)
    with pytest.raises(ConfigurationError, match="WELCOME_MAIL_JOINED_FIELD"):
        sync(joined_since=CUTOFF)
    settings.WELCOME_MAIL_SINCE = CUTOFF
    with pytest.raises(ConfigurationError, match="no field 'joined_at'"):
        sync()
    assert WelcomeMail.objects.count() == 8


def test_with_a_cutoff_a_batch_is_two_statements_without_one_one():
    assert len(sync_target(None).inserts) == 1
    assert [i.joined for i in sync_target(CUTOFF).inserts] == [
        sql.Joined.at_or_after("date_joined", CUTOFF),
        sql.Joined.before("date_joined", CUTOFF),
    ]


def test_limit_counts_records_of_both_kinds_and_stops_exactly(settings):
    settings.WELCOME_MAIL_SINCE = CUTOFF
    made = bulk_users(30)
    joined(made[::2], CUTOFF - timedelta(days=1))
    first = sync(limit=11, batch_size=4)
    assert (first.created, first.stopped) == (11, "limit")
    assert first.pending + first.suppressed == 11
    assert WelcomeMail.objects.count() == 11
    rest = sync()
    assert rest.created == 19
    assert WelcomeMail.objects.filter(status=WelcomeMail.Status.SUPPRESSED).count() == 15
    assert_every_user_has_exactly_one_record()


def test_shards_cover_every_user_exactly_once():
    bulk_users(100)
    created = [sync(shard=Shard(k, 3)).created for k in (1, 2, 3)]
    assert sum(created) == 100 and all(created)
    assert_every_user_has_exactly_one_record()


def test_a_sharded_run_reports_what_other_shards_lack():
    bulk_users(10, start_pk=1)
    result = sync(shard=Shard(1, 2))
    assert result.created == 5
    assert (result.missing.in_shard, result.missing.in_table) == (0, 5)


def test_a_stop_request_ends_after_the_batch_in_flight():
    bulk_users(30)
    result = sync(stop=StopAtCheck(1, signal.SIGTERM))
    assert (result.created, result.stopped, result.stop_signal) == (7, "signal", signal.SIGTERM)
    assert WelcomeMail.objects.count() == 7
    assert sync().created == 23


def test_the_preview_splits_by_the_cutoff(settings):
    settings.WELCOME_MAIL_SINCE = CUTOFF
    made = bulk_users(10, start_pk=1)
    joined(made[:3], CUTOFF - timedelta(days=1))
    record_new_user(user=made[0], using="default")
    preview = sync_preview(using="default")
    assert (preview.missing.in_shard, preview.pending, preview.suppressed) == (9, 7, 2)
    sharded = sync_preview(using="default", shard=Shard(2, 2))  # odd pks: 1 (has one), 3, 5...
    assert (sharded.missing.in_shard, sharded.suppressed) == (4, 1)  # 3 joined before
    assert WelcomeMail.objects.count() == 1


@pytest.mark.any_user_model
def test_any_user_model_gaps_and_batches():
    without = users_with_gaps(60)
    result = sync(batch_size=9)
    assert result.created == len(without)
    assert result.last_pk == result.max_pk == users().order_by("pk").last().pk
    assert_every_user_has_exactly_one_record()
    assert sync().created == 0


@pytest.mark.any_user_model
def test_any_user_model_with_a_cutoff(settings):
    settings.WELCOME_MAIL_SINCE = CUTOFF
    made = bulk_users(20)
    joined(made[:8], CUTOFF - timedelta(days=1))
    joined(made[8:], CUTOFF + timedelta(days=1))
    result = sync(batch_size=6)
    assert (result.pending, result.suppressed) == (12, 8)
    assert_every_user_has_exactly_one_record()


@pytest.mark.django_db(transaction=True)
def test_a_record_committed_while_a_batch_waits_for_it_is_neither_duplicated_nor_counted():
    """A receiver's record of a user in the batch, not yet committed: the batch waits on
    the unique index, fails (PostgreSQL, without its conflict clause) and reruns with
    it; elsewhere the ignore clause skips the row. Exactly one record either way."""
    bulk_users(50)
    contested = users().order_by("pk")[20]
    attempts = []
    real_insert_missing = sql.insert_missing

    def insert_missing(connection, **kwargs):
        attempts.append(not kwargs["strategy"].conflict_clause)
        return real_insert_missing(connection, **kwargs)

    def sync_in_own_connection(sessions):
        try:
            sessions.put(session_id(connections["default"]))
            return sync(batch_size=100)
        finally:
            connections.close_all()

    with other_connection(autocommit=False) as other:
        with other.cursor() as cursor:
            cursor.execute(
                *sql.insert_missing_sql(
                    other,
                    values=pending_values(),
                    first_pk=contested.pk,
                    last_pk=contested.pk,
                    model=WelcomeMail,
                )
            )
        with ThreadPoolExecutor(1) as pool, pytest.MonkeyPatch.context() as patch:
            patch.setattr(sql, "insert_missing", insert_missing)
            sessions: queue.Queue = queue.Queue()
            running = pool.submit(sync_in_own_connection, sessions)
            wait_until_waiting(connection, sessions.get(timeout=30), running)
            other.commit()
            result = running.result(timeout=30)
    assert result.created == result.pending == 49
    assert WelcomeMail.objects.count() == 50
    assert WelcomeMail.objects.values("user").distinct().count() == 50
    if connection.vendor == "postgresql":
        assert attempts == [True, False]


# -- suppress --


@pytest.fixture
def bands():
    """Users who joined before, in and after [CUTOFF, CUTOFF + 10 days), with records
    of each state in the range."""
    before, inside, after = bulk_users(5, "before"), bulk_users(12, "in"), bulk_users(5, "after")
    joined(before, CUTOFF - timedelta(seconds=1))
    joined(inside, CUTOFF + timedelta(days=2))
    joined(inside[:1], CUTOFF)
    joined(after, CUTOFF + timedelta(days=10))
    for user in [*before[:2], *inside[:8], *after[:2]]:
        record_new_user(user=user, using="default")
    by_status = {
        WelcomeMail.Status.SENT: inside[0:2],
        WelcomeMail.Status.SENDING: inside[2:3],
        WelcomeMail.Status.FAILED: inside[3:5],
        WelcomeMail.Status.SUPPRESSED: inside[5:6],
    }  # inside[6:8] stay pending, inside[8:] have none
    for status, made in by_status.items():
        WelcomeMail.objects.filter(user_id__in=[u.pk for u in made]).update(
            status=status, reason="old reason"
        )
    # A live lease: a sender may be sending it now.
    WelcomeMail.objects.filter(user_id=inside[2].pk).update(
        due_at=timezone.now() + timedelta(hours=1)
    )
    return before, inside, after


def suppress(**kwargs):
    kwargs.setdefault("joined_from", CUTOFF)
    kwargs.setdefault("joined_to", CUTOFF + timedelta(days=10))
    kwargs.setdefault("reason", "imported from the old shop")
    return welcome_mails_suppress(using="default", **kwargs)


def test_suppress_a_range(bands):
    _, inside, _ = bands
    outside = dict(
        WelcomeMail.objects.exclude(user__in=[u.pk for u in inside]).values_list("pk", "status")
    )
    result = suppress()
    assert (result.created, result.suppressed, result.left_alone, result.already_suppressed) == (
        4,
        4,
        3,
        1,
    )
    records = {r.user_id: r for r in WelcomeMail.objects.filter(user__in=[u.pk for u in inside])}
    assert len(records) == 12
    assert [records[u.pk].status for u in inside[:3]] == ["sent", "sent", "sending"]
    turned = [records[u.pk] for u in [*inside[3:5], *inside[6:]]]
    assert {(r.status, r.reason) for r in turned} == {("suppressed", "imported from the old shop")}
    assert records[inside[5].pk].reason == "old reason"  # already suppressed: kept
    assert (
        dict(
            WelcomeMail.objects.exclude(user__in=[u.pk for u in inside]).values_list("pk", "status")
        )
        == outside
    )
    again = suppress()
    assert (again.created, again.suppressed, again.already_suppressed) == (0, 0, 9)


def test_suppress_takes_a_lease_that_ran_out_a_killed_senders(bands):
    _, inside, _ = bands
    WelcomeMail.objects.filter(user_id=inside[2].pk).update(
        due_at=timezone.now() - timedelta(seconds=1)
    )
    result = suppress()
    assert (result.suppressed, result.left_alone) == (5, 2)
    assert WelcomeMail.objects.get(user_id=inside[2].pk).status == "suppressed"


def test_suppress_dry_run_writes_nothing(bands):
    before = list(WelcomeMail.objects.values_list("pk", "status", "reason"))
    result = suppress(dry_run=True)
    assert result.dry_run
    assert (result.created, result.suppressed, result.left_alone, result.already_suppressed) == (
        4,
        4,
        3,
        1,
    )
    assert list(WelcomeMail.objects.values_list("pk", "status", "reason")) == before


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"reason": "  "}, "give a --reason"),
        ({"joined_to": CUTOFF}, "the range is empty"),
        ({"joined_from": CUTOFF + timedelta(days=1), "joined_to": CUTOFF}, "is not before"),
    ],
)
def test_suppress_refuses_an_empty_reason_or_range(changes, message):
    bulk_users(3)
    with pytest.raises(UsageError, match=message):
        suppress(**changes)
    assert WelcomeMail.objects.count() == 0


def test_suppress_needs_the_joined_field(settings):
    settings.WELCOME_MAIL_JOINED_FIELD = "joined_at"
    with pytest.raises(ConfigurationError, match="WELCOME_MAIL_JOINED_FIELD"):
        suppress()


@pytest.mark.any_user_model
def test_suppress_any_user_model():
    inside, outside = bulk_users(6, "in"), bulk_users(4, "out")
    joined(inside, CUTOFF + timedelta(hours=1))
    joined(outside, CUTOFF + timedelta(days=30))
    record_new_user(user=inside[0], using="default")
    result = suppress()
    assert (result.created, result.suppressed) == (5, 1)
    assert set(
        WelcomeMail.objects.filter(status="suppressed").values_list("user_id", flat=True)
    ) == {u.pk for u in inside}
