"""Delivery against a real SMTP server (tests/helpers/smtp.py): the claim and its lease,
the fenced marks, the backoff, failures, retry, an unreachable server, no address.

Races are staged on the database (a second connection holding rows or the write
lock) or on the server (a reply held until the test lets it go), never by sleeping.
"""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.db import connection, connections
from django.test import override_settings
from django.utils import timezone

from profiles.models import WelcomeMail
from profiles.welcome import delivery as delivery_module
from profiles.welcome.delivery import (
    NO_ADDRESS,
    claim,
    deliver,
    welcome_mails_retry,
    welcome_mails_send,
)
from profiles.welcome.message import message_id
from profiles.welcome.records import pending_values
from tests.helpers.locking import other_connection
from tests.helpers.processes import wait_until
from tests.helpers.smtp import SmtpSink, refusing_settings, smtp_sink
from tests.helpers.stopping import StopAtCheck
from tests.helpers.users import bulk_users, user_model

pytestmark = pytest.mark.django_db

Status = WelcomeMail.Status
# PostgreSQL, and the MariaDB (>= 10.6) of CI; asking the features would query the
# server's version while pytest collects.
SKIP_LOCKED = connection.vendor in ("postgresql", "mysql")


@pytest.fixture
def sink():
    with smtp_sink() as server, server.settings():
        yield server


def pending(users: list[Any], **values: Any) -> list[WelcomeMail]:
    """Pending records, due now, for ``users`` (made by bulk_create: no receiver wrote one)."""
    return WelcomeMail.objects.bulk_create(
        [WelcomeMail(user_id=u.pk, **{**pending_values(), **values}) for u in users]
    )


def record(user: Any) -> WelcomeMail:
    return WelcomeMail.objects.get(user_id=user.pk)


def address(user: Any) -> str:
    return str(getattr(user, user.get_email_field_name()))


# -- sending --


@pytest.mark.any_user_model
def test_each_due_record_is_sent_once_over_one_connection_per_batch(sink):
    users = bulk_users(5)
    pending(users)
    result = welcome_mails_send(using="default", batch_size=2)
    assert (result.sent, result.batches, result.stopped) == (5, 3, None)
    assert sink.message_ids() == {message_id(u.pk): 1 for u in users}
    assert sink.sessions() == 3
    for user in users:
        mail = record(user)
        assert (mail.status, mail.message_id, mail.attempts) == (
            Status.SENT,
            message_id(user.pk),
            1,
        )
        assert mail.sent_at is not None
    assert {r.recipients for r in sink.received} == {(address(u),) for u in users}


def test_records_not_due_are_left_alone(sink):
    users = bulk_users(5)
    later = timezone.now() + timedelta(hours=1)
    pending(users[:1], due_at=later)  # backing off
    pending(users[1:2], status=Status.SENDING, due_at=later)  # another sender's live lease
    pending(users[2:3], status=Status.SENT)
    pending(users[3:4], status=Status.SUPPRESSED)
    pending(users[4:], status=Status.FAILED)
    before = {m.pk: (m.status, m.due_at, m.attempts) for m in WelcomeMail.objects.all()}
    result = welcome_mails_send(using="default")
    assert (result.sent, result.batches) == (0, 0)
    assert sink.count() == 0
    after = {m.pk: (m.status, m.due_at, m.attempts) for m in WelcomeMail.objects.all()}
    assert after == before


def test_a_lease_that_ran_out_is_claimed_again(sink):
    (user,) = bulk_users(1)
    pending([user], status=Status.SENDING, due_at=timezone.now() - timedelta(seconds=1), attempts=1)
    result = welcome_mails_send(using="default")
    assert result.sent == 1
    assert (record(user).status, record(user).attempts) == (Status.SENT, 2)
    assert sink.message_ids() == {message_id(user.pk): 1}


@override_settings(WELCOME_MAIL_LEASE_SECONDS=300)
def test_a_claim_leases_expired_leases_first_then_the_oldest_pending():
    users = bulk_users(4)
    now = timezone.now()
    pending(users[:1], due_at=now - timedelta(minutes=1))
    pending(users[1:2], due_at=now - timedelta(minutes=5))
    pending(users[2:3], status=Status.SENDING, due_at=now - timedelta(seconds=1), attempts=2)
    pending(users[3:], due_at=now - timedelta(minutes=3))
    claimed = claim(using="default", batch_size=3)
    assert [c.user_pk for c in claimed] == [users[2].pk, users[1].pk, users[3].pk]
    assert [c.attempts for c in claimed] == [3, 1, 1]
    lease = claimed[0].lease
    assert now + timedelta(seconds=299) < lease <= timezone.now() + timedelta(seconds=300)
    for c in claimed:
        mail = WelcomeMail.objects.get(pk=c.pk)
        assert (mail.status, mail.due_at, mail.attempts) == (Status.SENDING, lease, c.attempts)
    assert record(users[0]).status == Status.PENDING
    assert [c.user_pk for c in claim(using="default", batch_size=3)] == [users[0].pk]
    assert claim(using="default", batch_size=3) == []


def test_a_sender_whose_lease_was_taken_over_changes_nothing(sink):
    (user,) = bulk_users(1)
    pending([user])
    stale = claim(using="default", batch_size=10)
    # Its lease runs out (staged: the record's due_at moved into the past) and
    # another sender claims the record and sends it.
    WelcomeMail.objects.update(due_at=timezone.now() - timedelta(seconds=1))
    taken_over = claim(using="default", batch_size=10)
    assert deliver(using="default", claimed=taken_over).sent == 1
    sent = record(user)
    # The stale sender wakes up and sends too: the server gets a duplicate, the
    # record keeps the second sender's mark.
    assert deliver(using="default", claimed=stale).sent == 0
    assert record(user).sent_at == sent.sent_at
    assert (record(user).status, record(user).attempts) == (Status.SENT, 2)
    assert sink.message_ids() == {message_id(user.pk): 2}


@override_settings(WELCOME_MAIL_RETRY_BACKOFF_SECONDS=60, WELCOME_MAIL_MAX_ATTEMPTS=5)
def test_a_transient_error_backs_off_exponentially(sink):
    users = bulk_users(3)
    pending(users)
    sink.reply_after_data(address(users[1]), "451 4.3.0 try again later", "451 4.3.0 still busy")
    before = timezone.now()
    result = welcome_mails_send(using="default")
    assert (result.sent, result.deferred, result.failed) == (2, 1, 0)
    mail = record(users[1])
    assert (mail.status, mail.attempts, mail.reason) == (
        Status.PENDING,
        1,
        "451 4.3.0 try again later",
    )
    assert before + timedelta(seconds=60) <= mail.due_at <= timezone.now() + timedelta(seconds=60)
    assert sink.sessions() == 2  # reopened after the error, for the rest of the batch

    WelcomeMail.objects.filter(pk=mail.pk).update(due_at=timezone.now())  # the backoff passes
    before = timezone.now()
    assert welcome_mails_send(using="default").deferred == 1
    mail = record(users[1])
    assert (mail.attempts, mail.reason) == (2, "451 4.3.0 still busy")
    assert before + timedelta(seconds=120) <= mail.due_at <= timezone.now() + timedelta(seconds=120)

    WelcomeMail.objects.filter(pk=mail.pk).update(due_at=timezone.now())
    assert welcome_mails_send(using="default").sent == 1
    assert record(users[1]).status == Status.SENT
    assert sink.message_ids()[message_id(users[1].pk)] == 1


@override_settings(WELCOME_MAIL_RETRY_BACKOFF_SECONDS=0, WELCOME_MAIL_MAX_ATTEMPTS=3)
def test_transient_errors_fail_the_record_at_the_last_attempt(sink):
    (user,) = bulk_users(1)
    pending([user])
    sink.reply_after_data(address(user), *["451 4.3.0 busy"] * 3)
    result = welcome_mails_send(using="default")
    assert (result.sent, result.deferred, result.failed) == (0, 2, 1)
    mail = record(user)
    assert (mail.status, mail.attempts, mail.reason) == (Status.FAILED, 3, "451 4.3.0 busy")
    assert sink.count() == 0


def test_a_permanent_error_fails_the_record_at_once_and_the_batch_goes_on(sink):
    users = bulk_users(3)
    pending(users)
    sink.reply_after_data(
        address(users[0]), "550-5.7.1 message rejected\r\n550 5.7.1 see the policy"
    )
    sink.refuse_recipient(address(users[1]), "550 5.1.1 no such user")
    result = welcome_mails_send(using="default")
    assert (result.sent, result.failed, result.deferred) == (1, 2, 0)
    assert (record(users[0]).status, record(users[0]).reason) == (
        Status.FAILED,
        "550 5.7.1 message rejected 5.7.1 see the policy",  # one line
    )
    assert (record(users[1]).status, record(users[1]).reason) == (
        Status.FAILED,
        "recipient refused: 550 5.1.1 no such user",
    )
    assert record(users[2]).status == Status.SENT
    assert sink.sessions() == 1  # a refusal leaves the session usable


def test_a_lost_connection_defers_the_record_and_reconnects_for_the_rest(sink):
    users = bulk_users(3)
    pending(users)
    sink.reply_after_data(address(users[0]), "421 4.3.2 closing the connection")
    result = welcome_mails_send(using="default")
    assert (result.sent, result.deferred) == (2, 1)
    assert record(users[0]).reason == "421 4.3.2 closing the connection"
    assert sink.sessions() == 1  # the rest over a new connection; the first sent nothing


@pytest.mark.any_user_model
def test_an_unreachable_server_gives_the_batch_back_with_its_attempts_unspent():
    users = bulk_users(3)
    pending(users, attempts=1)
    before = timezone.now()
    with refusing_settings():
        result = welcome_mails_send(using="default", batch_size=2)
    assert (result.sent, result.released, result.batches, result.pending) == (0, 2, 1, 3)
    assert result.unreachable is not None
    assert result.unreachable.startswith("SMTP 127.0.0.1:")
    assert "refused" in result.unreachable.lower()
    for user in users:
        mail = record(user)
        assert (mail.status, mail.attempts) == (Status.PENDING, 1)
        assert mail.due_at <= timezone.now()
    released = [record(u) for u in users if record(u).reason]
    assert len(released) == 2
    assert all(m.due_at >= before for m in released)
    assert all("mail server unreachable" in m.reason for m in released)


@pytest.mark.any_user_model
def test_a_user_without_an_address_is_suppressed_not_mailed(sink):
    with_address, without = bulk_users(2)
    user_model()._default_manager.filter(pk=without.pk).update(
        **{without.get_email_field_name(): ""}
    )
    pending([with_address, without])
    result = welcome_mails_send(using="default")
    assert (result.sent, result.suppressed) == (1, 1)
    assert (record(without).status, record(without).reason) == (Status.SUPPRESSED, NO_ADDRESS)
    assert sink.message_ids() == {message_id(with_address.pk): 1}


@pytest.mark.any_user_model
def test_users_limits_the_run_to_their_records(sink):
    users = bulk_users(3)
    pending(users)
    result = welcome_mails_send(using="default", users=[str(users[1].pk)])
    assert result.sent == 1
    assert [record(u).status for u in users] == [Status.PENDING, Status.SENT, Status.PENDING]


def test_limit_and_max_seconds_stop_at_a_batch_boundary(sink):
    users = bulk_users(5)
    pending(users)
    result = welcome_mails_send(using="default", batch_size=2, limit=3)
    assert (result.sent, result.batches, result.stopped) == (3, 2, "limit")
    assert WelcomeMail.objects.filter(status=Status.PENDING, attempts=0).count() == 2
    result = welcome_mails_send(using="default", batch_size=1, max_seconds=1e-9)
    assert (result.sent, result.stopped) == (0, "max_seconds")


def test_a_stop_between_two_mails_gives_the_rest_of_the_batch_back(sink):
    users = bulk_users(4)
    pending(users)
    # Read once before the batch, then before each mail: the third read asks to stop.
    result = welcome_mails_send(using="default", stop=StopAtCheck(3, signal.SIGTERM))
    assert (result.sent, result.released, result.stopped, result.stop_signal) == (
        1,
        3,
        "signal",
        signal.SIGTERM,
    )
    assert WelcomeMail.objects.filter(status=Status.PENDING, attempts=0).count() == 3
    assert sink.count() == 1


def test_on_batch_reports_progress_against_what_was_due(sink):
    pending(bulk_users(3))
    seen: list[tuple[int, int]] = []
    welcome_mails_send(using="default", batch_size=2, on_batch=lambda *a: seen.append(a))
    assert seen == [(2, 3), (3, 3)]


# -- what is the record's fault, and what is not --

NEWLINE_ADDRESS = "x@example.com\nBcc: evil@example.com"


def set_address(user: Any, value: str) -> None:
    user_model()._default_manager.filter(pk=user.pk).update(**{user.get_email_field_name(): value})


@pytest.mark.any_user_model
@pytest.mark.parametrize(
    ("smtp", "bad"),
    [
        (True, NEWLINE_ADDRESS),
        (False, NEWLINE_ADDRESS),  # BadHeaderError from any backend
        (True, "a@b, evil@example.com"),  # unparseable for the SMTP backend (locmem keeps it)
    ],
    ids=["smtp-newline", "locmem-newline", "smtp-two-addresses"],
)
def test_an_address_django_cannot_send_fails_its_record_and_the_batch_goes_on(smtp, bad):
    bad_user, good = bulk_users(2)
    set_address(bad_user, bad)
    now = timezone.now()
    pending([bad_user], due_at=now - timedelta(minutes=1))  # first in the batch
    pending([good])
    with smtp_sink() as server, server.settings() if smtp else override_settings():
        result = welcome_mails_send(using="default")
        received = server.message_ids()
    assert (result.sent, result.failed, result.deferred) == (1, 1, 0)
    failed = record(bad_user)
    assert failed.status == Status.FAILED
    assert failed.reason.startswith("the address cannot be sent to: ")
    assert "evil" not in failed.reason and "@" not in failed.reason
    assert (record(good).status, record(good).attempts) == (Status.SENT, 1)
    if smtp:
        assert received == {message_id(good.pk): 1}
    else:
        assert [m.to for m in mail.outbox] == [[address(good)]]


def test_a_bad_address_left_leased_by_a_killed_sender_does_not_block_its_batch(sink):
    # The reviewer's case: the first run died on it (its lease ran out), and every
    # later run raised on it again, the record behind it leased for ever.
    bad_user, good = bulk_users(2)
    set_address(bad_user, NEWLINE_ADDRESS)
    expired = timezone.now() - timedelta(seconds=1)
    pending([bad_user], status=Status.SENDING, due_at=expired - timedelta(minutes=1), attempts=1)
    pending([good], status=Status.SENDING, due_at=expired, attempts=1)
    result = welcome_mails_send(using="default")
    assert (result.sent, result.failed) == (1, 1)
    assert (record(bad_user).status, record(bad_user).attempts) == (Status.FAILED, 2)
    assert record(good).status == Status.SENT
    assert welcome_mails_send(using="default").batches == 0  # nothing left to claim


@override_settings(WELCOME_MAIL_MAX_ATTEMPTS=3)
def test_a_lease_that_ran_out_at_the_last_attempt_is_failed_not_claimed_again(sink):
    abandoned, again, live = bulk_users(3)
    expired = timezone.now() - timedelta(seconds=1)
    pending([abandoned], status=Status.SENDING, due_at=expired, attempts=3)
    pending([again], status=Status.SENDING, due_at=expired, attempts=2)
    pending([live], status=Status.SENDING, due_at=timezone.now() + timedelta(hours=1), attempts=3)
    assert [c.user_pk for c in claim(using="default", batch_size=10)] == [again.pk]
    WelcomeMail.objects.filter(user_id=again.pk).update(due_at=expired, attempts=2)
    result = welcome_mails_send(using="default")
    assert (result.sent, result.failed) == (1, 1)
    mail = record(abandoned)
    assert (mail.status, mail.attempts, mail.reason) == (
        Status.FAILED,
        3,
        "gave up after 3 attempts; the last sender did not finish",
    )
    assert (record(again).status, record(again).attempts) == (Status.SENT, 3)
    assert record(live).status == Status.SENDING  # its sender may still finish
    assert sink.message_ids() == {message_id(again.pk): 1}


class Clock:
    """The time :mod:`profiles.welcome.delivery` checks leases against: now, plus
    however far a test moved it on (no sleeping)."""

    def __init__(self, offset: float = 0.0, *, calls: int = 1000) -> None:
        self.offset = timedelta(seconds=offset)
        self.calls = calls  # a bound: a run that loops fails instead of hanging

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)

    def __call__(self) -> Any:
        self.calls -= 1
        assert self.calls >= 0, "the sender keeps checking: it loops"
        return timezone.now() + self.offset


@override_settings(WELCOME_MAIL_LEASE_SECONDS=300)
def test_a_lease_running_low_mid_batch_gives_the_rest_back_for_a_fresh_lease(sink, monkeypatch):
    users = bulk_users(5)
    now = timezone.now()
    for i, user in enumerate(users):
        pending([user], due_at=now - timedelta(minutes=10 - i))
    clock = Clock()
    monkeypatch.setattr(delivery_module, "_now", clock)
    # The second mail's reply takes 240 s of the 300 s lease: 60 s are left, under the
    # margin (a quarter of the lease, 75 s, above the 10 s timeout).
    sink.before_reply(2, lambda: clock.advance(240))
    found: list[list[tuple[str, int]]] = []  # the last three, as each claim found them
    real_claim = delivery_module.claim

    def claim_(**kwargs: Any) -> Any:
        found.append([(record(u).status, record(u).attempts) for u in users[2:]])
        return real_claim(**kwargs)

    monkeypatch.setattr(delivery_module, "claim", claim_)
    result = welcome_mails_send(using="default", batch_size=5)
    # The first batch gave its last three back; the next claim took them, fresh lease.
    assert (result.sent, result.released, result.batches, result.stopped) == (5, 3, 2, None)
    assert found[1] == [(Status.PENDING, 0)] * 3
    assert sink.duplicates() == {} and sink.count() == 5
    assert sink.sessions() == 2
    assert [(record(u).status, record(u).attempts) for u in users] == [(Status.SENT, 1)] * 5


@override_settings(WELCOME_MAIL_LEASE_SECONDS=300)
def test_a_batch_given_back_before_its_first_mail_ends_the_run(sink, monkeypatch):
    # Every claim takes 290 s of its 300 s lease (a database that slow): its lease is
    # near its end before the first mail, and claiming again would only give it back
    # again.
    pending(bulk_users(3))
    clock = Clock(calls=20)
    monkeypatch.setattr(delivery_module, "_now", clock)
    real_claim = delivery_module.claim

    def slow_claim(**kwargs: Any) -> Any:
        claimed = real_claim(**kwargs)
        clock.advance(290)
        return claimed

    monkeypatch.setattr(delivery_module, "claim", slow_claim)
    result = welcome_mails_send(using="default", batch_size=2)
    assert (result.sent, result.released, result.batches) == (0, 2, 1)
    assert WelcomeMail.objects.filter(status=Status.PENDING, attempts=0).count() == 3
    assert sink.count() == 0


@override_settings(WELCOME_MAIL_LEASE_SECONDS=100)
def test_the_lease_margin_is_a_quarter_of_the_lease_or_the_timeout_at_most_half():
    class Mailer:
        timeout: float | None = None

    mailer = Mailer()
    assert delivery_module.lease_margin(mailer) == 25
    mailer.timeout = 40
    assert delivery_module.lease_margin(mailer) == 40
    mailer.timeout = 90
    assert delivery_module.lease_margin(mailer) == 50


@pytest.mark.any_user_model
def test_a_server_refusing_our_sender_gives_the_batch_back_and_stops_the_run(sink):
    users = bulk_users(3)
    pending(users, attempts=1)
    sink.refuse_sender("553 5.7.1 <webmaster@localhost>: sender address rejected")
    result = welcome_mails_send(using="default", batch_size=2)
    assert (result.sent, result.failed, result.deferred) == (0, 0, 0)
    assert (result.released, result.batches, result.pending, result.unreachable) == (2, 1, 3, None)
    assert result.misconfigured is not None
    assert result.misconfigured.startswith(f"SMTP 127.0.0.1:{sink.port} refused the sender")
    assert "553" in result.misconfigured and "DEFAULT_FROM_EMAIL" in result.misconfigured
    assert "rejected" not in result.misconfigured  # not the server's reply
    for user in users:
        mail = record(user)
        assert (mail.status, mail.attempts) == (Status.PENDING, 1)
        assert mail.due_at <= timezone.now()
    assert sink.count() == 0


def test_a_temporary_refusal_of_our_sender_stays_the_records(sink):
    (user,) = bulk_users(1)
    pending([user])
    sink.refuse_sender("451 4.3.0 try later")
    result = welcome_mails_send(using="default")
    assert (result.deferred, result.misconfigured) == (1, None)
    assert record(user).reason == "451 4.3.0 try later"


@pytest.mark.parametrize("password", ["right", "wrong"])
def test_a_refused_login_is_a_configuration_error_not_an_unreachable_server(password):
    users = bulk_users(2)
    pending(users)
    with smtp_sink(login=("welcome", "right")) as server:
        with server.settings(username="welcome", password=password):
            result = welcome_mails_send(using="default")
        received = server.count()
    if password == "right":
        assert (result.sent, result.misconfigured, received) == (2, None, 2)
        return
    assert (result.sent, result.released, result.unreachable) == (0, 2, None)
    assert result.misconfigured is not None
    assert "EMAIL_HOST_USER" in result.misconfigured and "535" in result.misconfigured
    assert all((record(u).status, record(u).attempts) == (Status.PENDING, 0) for u in users)
    assert "mail settings refused" in record(users[0]).reason
    assert received == 0


def test_a_task_meeting_a_refused_sender_does_not_raise_and_leaves_the_records_pending(sink):
    from profiles.welcome.tasks import deliver_welcome_mails

    try:
        from django.tasks import TaskResultStatus
    except ImportError:  # Django 5.2 with django-tasks
        from django_tasks import TaskResultStatus  # type: ignore[assignment,no-redef,unused-ignore]

    (user,) = bulk_users(1)
    pending([user])
    sink.refuse_sender()
    task = deliver_welcome_mails.enqueue(user_pks=[str(user.pk)], using="default")
    assert task.status == TaskResultStatus.SUCCESSFUL
    assert task.return_value["released"] == 1
    assert (record(user).status, record(user).attempts) == (Status.PENDING, 0)


# -- retry --


def test_retry_puts_failed_records_back_to_pending():
    users = bulk_users(3)
    pending(users[:2], status=Status.FAILED, attempts=5, reason="550 no")
    pending(users[2:], status=Status.SENT)
    before = timezone.now()
    assert welcome_mails_retry(using="default", users=[users[0].pk]) == 1
    assert welcome_mails_retry(using="default") == 1
    for user in users[:2]:
        mail = record(user)
        assert (mail.status, mail.attempts, mail.reason) == (Status.PENDING, 0, "")
        assert before <= mail.due_at <= timezone.now()
    assert record(users[2]).status == Status.SENT
    assert welcome_mails_retry(using="default") == 0


# -- concurrent senders: transactions of their own --


@pytest.mark.django_db(transaction=True)
def test_each_mail_is_marked_sent_as_soon_as_the_server_accepts_it(sink: SmtpSink):
    users = bulk_users(4)
    pending(users)
    sink.hold_at(3)  # the third message's reply waits
    with ThreadPoolExecutor(max_workers=1) as pool:
        run = pool.submit(_in_thread, welcome_mails_send, using="default")
        wait_until(lambda: sink.count() >= 3 or run.done())
        statuses = [record(u).status for u in users]
        sink.release()
        result = run.result(timeout=30)
    assert statuses == [Status.SENT, Status.SENT, Status.SENDING, Status.SENDING]
    assert result.sent == 4


@pytest.mark.django_db(transaction=True)
def test_two_senders_at_once_never_send_one_record_twice(sink):
    users = bulk_users(120)
    pending(users)
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = [
            pool.submit(_in_thread, welcome_mails_send, using="default", batch_size=7)
            for _ in range(2)
        ]
        results = [run.result(timeout=120) for run in runs]
    assert sum(r.sent for r in results) == 120
    assert sink.duplicates() == {}
    assert sink.count() == 120
    assert WelcomeMail.objects.filter(status=Status.SENT, attempts=1).count() == 120


@pytest.mark.applies_if(SKIP_LOCKED, reason="SKIP LOCKED: PostgreSQL and MariaDB >= 10.6")
@pytest.mark.django_db(transaction=True)
def test_a_claim_skips_the_rows_another_sender_is_claiming():
    now = timezone.now()
    for i, user in enumerate(bulk_users(6)):
        pending([user], due_at=now - timedelta(minutes=10 - i))
    table = WelcomeMail._meta.db_table
    with other_connection(autocommit=False) as other:
        with other.cursor() as cursor:  # the other sender's claim, as far as its SELECT
            cursor.execute(
                f"SELECT id FROM {table} WHERE status = 'pending' AND due_at <= %s "
                "ORDER BY due_at LIMIT 2 FOR UPDATE",
                [now],
            )
            theirs = {row[0] for row in cursor.fetchall()}
        ours = claim(using="default", batch_size=10)  # does not wait for them
        other.rollback()
    assert len(theirs) == 2
    assert {c.pk for c in ours} == {m.pk for m in WelcomeMail.objects.all()} - theirs


@pytest.mark.applies_if(not SKIP_LOCKED, reason="a backend without SKIP LOCKED: SQLite")
@pytest.mark.django_db(transaction=True)
def test_a_claim_waits_for_the_writer_and_takes_only_what_it_left():
    users = bulk_users(6)
    pending(users)
    table = WelcomeMail._meta.db_table
    lease = timezone.now() + timedelta(hours=1)
    with other_connection() as other, ThreadPoolExecutor(max_workers=1) as pool:
        raw = other.connection
        raw.execute("BEGIN IMMEDIATE")  # the other sender's claim holds the write lock
        cursor = raw.execute(f"SELECT id FROM {table} ORDER BY due_at, id LIMIT 2")
        theirs = {row[0] for row in cursor.fetchall()}
        waiting = pool.submit(_in_thread, claim, using="default", batch_size=10)
        raw.execute(
            f"UPDATE {table} SET status = 'sending', due_at = ?, attempts = attempts + 1 "
            f"WHERE id IN ({', '.join('?' * len(theirs))})",
            [connection.ops.adapt_datetimefield_value(lease), *theirs],
        )
        raw.execute("COMMIT")
        ours = waiting.result(timeout=30)
    assert {c.pk for c in ours} == {m.pk for m in WelcomeMail.objects.all()} - theirs


# -- the fast path (Django's bytes over the SMTP backend's connection) and the fallback --


def spy_fallback(monkeypatch: Any) -> list[Any]:
    """The users whose mail was built by Django per message (the fallback)."""
    built: list[Any] = []
    real = delivery_module.welcome_message  # type: ignore[attr-defined]

    def welcome_message(user: Any) -> Any:
        built.append(user.pk)
        return real(user)

    monkeypatch.setattr(delivery_module, "welcome_message", welcome_message)
    return built


def test_plain_users_take_the_fast_path_and_the_others_djangos(sink, monkeypatch):
    plain, accented = bulk_users(2)
    user_model()._default_manager.filter(pk=accented.pk).update(username="Jürgen")
    pending([plain, accented])
    built = spy_fallback(monkeypatch)
    assert welcome_mails_send(using="default").sent == 2
    assert built == [accented.pk]
    assert sink.message_ids() == {message_id(plain.pk): 1, message_id(accented.pk): 1}


def test_another_backend_gets_send_messages(monkeypatch):
    users = bulk_users(2)  # the tests' mail backend: locmem
    pending(users)
    built = spy_fallback(monkeypatch)
    assert welcome_mails_send(using="default").sent == 2
    assert sorted(map(str, built)) == sorted(str(u.pk) for u in users)
    assert sorted(m.extra_headers["Message-ID"] for m in mail.outbox) == sorted(
        message_id(u.pk) for u in users
    )


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "fallback"])
@override_settings(WELCOME_MAIL_RETRY_BACKOFF_SECONDS=600)
def test_smtp_errors_are_classified_alike_on_both_paths(sink, monkeypatch, fast):
    users = bulk_users(4)
    if not fast:
        for user in users:
            user_model()._default_manager.filter(pk=user.pk).update(username=f"ü{user.pk}")
    pending(users)
    built = spy_fallback(monkeypatch)
    sink.reply_after_data(address(users[0]), "451 4.3.0 busy")
    sink.reply_after_data(address(users[1]), "554 5.7.1 rejected")
    sink.refuse_recipient(address(users[2]), "550 5.1.1 no such user")
    result = welcome_mails_send(using="default")
    assert (result.sent, result.deferred, result.failed) == (1, 1, 2)
    assert [(record(u).status, record(u).reason) for u in users] == [
        (Status.PENDING, "451 4.3.0 busy"),
        (Status.FAILED, "554 5.7.1 rejected"),
        (Status.FAILED, "recipient refused: 550 5.1.1 no such user"),
        (Status.SENT, ""),
    ]
    assert bool(built) is not fast


# -- jobs: senders of one run in threads of their own --


@pytest.mark.applies_if(connection.vendor != "sqlite", reason="SQLite runs one sender")
@pytest.mark.django_db(transaction=True)
def test_two_senders_of_one_run_deliver_each_record_once(sink):
    users = bulk_users(60)
    pending(users)
    sink.hold_at(1)  # every reply waits: both senders end up with a mail in flight
    with ThreadPoolExecutor(max_workers=1) as pool:
        run = pool.submit(_in_thread, welcome_mails_send, using="default", batch_size=7, jobs=2)
        wait_until(lambda: sink.count() >= 2 or run.done())
        at_once = sink.sessions()
        leased = WelcomeMail.objects.filter(status=Status.SENDING).count()
        sink.release()
        result = run.result(timeout=120)
    assert (at_once, leased) == (2, 14)  # two connections, two claims of 7
    assert (result.sent, result.jobs) == (60, 2)
    # At least 9 claims of at most 7. Under load a claim may come back short: rows
    # the other sender's claim holds locked are skipped, and a sender whose lease
    # runs low gives the rest of its batch back.
    assert 9 <= result.batches <= 60
    assert sink.duplicates() == {}
    assert sink.count() == 60
    assert WelcomeMail.objects.filter(status=Status.SENT, attempts=1).count() == 60


@pytest.mark.applies_if(connection.vendor != "sqlite", reason="SQLite runs one sender")
@pytest.mark.django_db(transaction=True)
def test_an_error_in_one_sender_stops_the_other_and_is_raised(sink, monkeypatch):
    users = bulk_users(40)
    now = timezone.now()
    pending(users[:1], due_at=now - timedelta(minutes=1))  # claimed first
    pending(users[1:])
    real = delivery_module._Batch._send_one

    def failing(self: Any, mailer: Any, user: Any, identifier: str) -> int:
        if user.pk == users[0].pk:
            raise RuntimeError("boom")
        return int(real(self, mailer, user, identifier))

    monkeypatch.setattr(delivery_module._Batch, "_send_one", failing)
    with ThreadPoolExecutor(max_workers=1) as pool:
        run = pool.submit(_in_thread, welcome_mails_send, using="default", batch_size=5, jobs=2)
        with pytest.raises(RuntimeError, match="boom"):
            run.result(timeout=120)
    sent = WelcomeMail.objects.filter(status=Status.SENT).count()
    leased = WelcomeMail.objects.filter(status=Status.SENDING).count()
    released = WelcomeMail.objects.filter(status=Status.PENDING, attempts=0).count()
    assert sink.count() == sent and sink.duplicates() == {}
    assert leased <= 5  # the failing batch, left to its lease as with one sender
    assert record(users[0]).status == Status.SENDING
    assert sent + leased + released == 40
    assert sent < 35  # the other sender stopped


@pytest.mark.applies_if(connection.vendor == "sqlite", reason="SQLite: one writer")
def test_sqlite_and_a_callers_transaction_run_one_sender(sink):
    pending(bulk_users(3))
    result = welcome_mails_send(using="default", jobs=2)
    assert (result.sent, result.jobs) == (3, 1)


def test_users_given_run_one_sender(sink):
    users = bulk_users(2)
    pending(users)
    result = welcome_mails_send(using="default", users=[users[0].pk], jobs=4)
    assert (result.sent, result.jobs) == (1, 1)


def _in_thread(func: Any, **kwargs: Any) -> Any:
    """``func(**kwargs)`` on this thread's own connection, closed afterwards."""
    try:
        return func(**kwargs)
    finally:
        connections.close_all()
