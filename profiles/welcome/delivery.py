"""Delivery: claim due welcome-mail records under a lease, send them over one mail
connection per batch, and mark each one the moment the server accepts it.

The way to a mail::

    welcome_mails_send -> _Run (``jobs`` senders, threads with connections of their own)
      -> claim (one short transaction: the lease)
      -> deliver (one mail connection; over Django's SMTP backend the bytes of
         profiles.welcome.message.WelcomeRenderer, else send_messages)
      -> _Marks.update (one fenced UPDATE per mail)

At least once, never twice in the normal case. The lease is the truth, not a
lock or a queue: a claimed record is ``sending`` until ``due_at``, and every
later write to it is fenced on that lease (status ``sending``, the claim's
``due_at`` and ``attempts``), so a sender whose lease ran out and was claimed
again changes nothing. A sender killed mid-batch leaves its records leased; once
the lease runs out the next sender claims them again, so a mail goes out twice
only if it was accepted and its mark not yet committed: the one in flight. The
Message-ID is the user's own (:func:`profiles.welcome.message.message_id`), so
such a duplicate is visible downstream.

A commit per mail is the price of that one-message window. On PostgreSQL the
mark's transaction does not wait for its WAL flush (``synchronous_commit = off``,
for that transaction only): a server crash may lose the last marks of the
moment, whose mails then go out again after the lease, the same bounded
duplicate a killed sender makes; it never loses a mail. The UPDATE and that
setting go as one simple query (one implicit transaction): one round trip.
With ``jobs`` senders, each has its one mail in flight: a killed process may
send up to ``jobs`` mails twice.

A lease is checked before each mail: with less than :func:`lease_margin` left,
the rest of the batch is given back (pending, due now, the attempt not spent)
and the next claim takes it with a fresh lease, so a slow batch does not run
past its lease into another sender's claim. A record whose lease ran out at
WELCOME_MAIL_MAX_ATTEMPTS (its senders killed on it again and again) is failed
at the next claim, not claimed again.

What is the record's fault and what is not: a refusal of the recipient or of
the message is the record's (failed, or retried after a backoff); so is an
address Django cannot put in a message (a newline, an unparseable address: a
bulk insert can write one), failed at once with a reason that does not quote
it. A refusal of our sender address (5xx at MAIL FROM) or of the login is the
configuration's: the batch is given back untouched and the run stops
(``misconfigured``), like an unreachable server.
"""

from __future__ import annotations

import email.errors
import smtplib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connections, transaction
from django.db.models import F, Field, QuerySet
from django.utils import timezone

from dbtools.errors import first_line
from dbtools.locks import database_lock
from dbtools.stopping import StopReason, StopRequest
from profiles.models import WelcomeMail
from profiles.welcome.message import (
    WelcomeRenderer,
    mail_connection,
    message_id,
    recipient,
    welcome_message,
)

Status = WelcomeMail.Status

NO_ADDRESS = "the user has no e-mail address"
# PostgreSQL: this transaction's commit does not wait for its WAL flush.
ASYNC_COMMIT = "SELECT set_config('synchronous_commit', 'off', true)"

# What a send error means for the record: give up on it, try it again later, or
# (the server cannot be reached at all) give every record of the batch back.
Verdict = Literal["permanent", "transient"]

# What Django (or the email package) raises for an address it cannot put in a
# message: BadHeaderError (a ValueError) for a newline, ValueError for an
# unparseable address, a UnicodeError, a MessageError from the email package.
# The record's own fault, for good. Anything else (a bug, the database) is raised.
UNSENDABLE = (ValueError, email.errors.MessageError)


@dataclass(frozen=True)
class SendResult:
    sent: int
    failed: int  # a permanent error, or a transient one at WELCOME_MAIL_MAX_ATTEMPTS
    deferred: int  # a transient error: pending again, due after the backoff
    suppressed: int  # the user has no address
    batches: int
    seconds: float
    stopped: StopReason | None
    stop_signal: int | None = None
    # Why the mail server could not be reached (one line): the run stopped there
    # and gave its unsent records back, pending and due now, attempts unspent.
    unreachable: str | None = None
    released: int = 0  # records given back unsent (unreachable, a stop, a lease running low)
    pending: int | None = None  # records pending when the mail server stopped the run
    jobs: int = 1  # the senders that ran at once (threads, each with its own connections)
    # The mail settings are wrong (one line naming them, no server reply): the server
    # refused our sender address or the login. The run stopped there like an
    # unreachable server's, its unsent records given back.
    misconfigured: str | None = None

    @property
    def mails_per_second(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Claimed:
    """A record leased to this sender: the lease (``due_at``, ``attempts``) fences every write."""

    pk: Any
    user_pk: Any
    attempts: int  # after the claim's increment
    lease: datetime  # the record's due_at while it is ours


def welcome_mails_send(
    *,
    using: str,
    batch_size: int = 100,
    limit: int | None = None,
    max_seconds: float | None = None,
    stop: StopRequest | None = None,
    users: Iterable[Any] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    jobs: int = 1,
) -> SendResult:
    """Send the due welcome mails, ``batch_size`` records per claim and mail connection.

    Due: pending records whose ``due_at`` has come, and sending ones whose lease
    ran out (their sender died). ``users``: only these users' records. Stops
    once nothing is due, after ``limit`` records, at the first batch boundary
    after ``max_seconds``, when ``stop`` is asked for (between two mails: the rest
    of the batch is given back), when the mail server cannot be reached, or when
    it refuses our sender address or login (``misconfigured``). Records whose
    lease ran out at WELCOME_MAIL_MAX_ATTEMPTS are failed (counted in ``failed``).
    ``on_batch(done, total)`` gets the records handled so far against those due
    at the start.

    ``jobs``: senders at once, each a thread with its own database and mail
    connections, each claiming batches of its own (the lease keeps the claims
    apart). One inside a transaction (other connections cannot see its records),
    with ``users`` (a task's few records) and on SQLite (one writer). A signal or
    an unreachable or misconfigured server stops every sender after its mail in flight; a limit or
    max_seconds stops each at its next batch boundary; an error in one stops the
    others after their mail in flight and is raised once they have.
    """
    started = time.perf_counter()
    stop = stop or StopRequest()
    user_pks = None if users is None else [str(pk) for pk in users]
    jobs = _jobs(using=using, jobs=jobs, users=user_pks)
    total = _due_count(using=using, users=user_pks) if on_batch is not None else 0
    run = _Run(
        using=using,
        batch_size=batch_size,
        limit=limit,
        deadline=None if max_seconds is None else started + max_seconds,
        stop=stop,
        users=user_pks,
        on_batch=on_batch,
        total=total,
    )
    run.run(jobs=jobs)
    outcomes = run.outcomes
    unreachable, misconfigured = run.unreachable, run.misconfigured
    return SendResult(
        sent=sum(o.sent for o in outcomes),
        failed=sum(o.failed for o in outcomes) + run.given_up,
        deferred=sum(o.deferred for o in outcomes),
        suppressed=sum(o.suppressed for o in outcomes),
        batches=len(outcomes),
        seconds=time.perf_counter() - started,
        stopped=run.stopped,
        stop_signal=stop.signum if run.stopped == "signal" else None,
        unreachable=unreachable,
        released=sum(o.released for o in outcomes),
        pending=(
            _pending_count(using=using)
            if unreachable is not None or misconfigured is not None
            else None
        ),
        jobs=jobs,
        misconfigured=misconfigured,
    )


def _jobs(*, using: str, jobs: int, users: Sequence[str] | None) -> int:
    """How many senders may run at once. One inside a transaction (other connections
    cannot see its records), for a task's few ``users``, and on SQLite: its one writer
    makes a second sender's claims and marks wait for the first's (measured: 2 senders
    deliver about a fifth less than one there)."""
    connection = connections[using]
    if users is not None or connection.in_atomic_block or connection.vendor == "sqlite":
        return 1
    return max(1, jobs)


class _Run:
    """One send run: its senders (threads) claim and deliver batches, and add up the
    outcomes under ``_tally``; the first to end the run says why."""

    def __init__(
        self,
        *,
        using: str,
        batch_size: int,
        limit: int | None,
        deadline: float | None,
        stop: StopRequest,
        users: Sequence[str] | None,
        on_batch: Callable[[int, int], None] | None,
        total: int,
    ) -> None:
        self.using, self.batch_size, self.limit, self.deadline = using, batch_size, limit, deadline
        self.stop, self.users, self.on_batch, self.total = stop, users, on_batch, total
        self.outcomes: list[BatchOutcome] = []
        self.stopped: StopReason | None = None
        self.unreachable: str | None = None
        self.misconfigured: str | None = None
        self.given_up = 0  # leases that ran out at the last attempt, failed at a claim
        self._handled = 0
        self._reserved = 0  # records of the limit taken by claims in flight
        self._ended = False  # no sender claims another batch
        self._halt = False  # every sender stops after its mail in flight
        self._tally = threading.Lock()

    def run(self, *, jobs: int) -> None:
        """:meth:`work` in this thread, or in ``jobs`` threads with connections of their
        own; once every thread has finished its mail in flight, re-raise an error one
        of them met."""
        if jobs == 1:
            self.work()
            return
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="welcome-send") as pool:
            futures = [pool.submit(self._work_in_own_connection) for _ in range(jobs)]
        for future in futures:
            future.result()

    def _work_in_own_connection(self) -> None:
        try:
            self.work()
        except BaseException:
            with self._tally:
                self._ended = self._halt = True
            raise
        finally:
            connections.close_all()  # this thread's connections only

    def work(self) -> None:
        """Claim and deliver batches until none is due or the run is to end."""
        renderer = WelcomeRenderer()
        while (size := self._reserve()) is not None:
            given_up = give_up_abandoned(using=self.using, users=self.users)
            if given_up:
                with self._tally:
                    self.given_up += given_up
            claimed = claim(using=self.using, batch_size=size, users=self.users)
            if not claimed:
                self._finish(size, None)
                return
            outcome = deliver(
                using=self.using, claimed=claimed, stop=self._halted, renderer=renderer
            )
            self._finish(size, outcome)

    def _halted(self) -> bool:
        """Between two mails: a signal, or another sender's unreachable or misconfigured
        server, or its error."""
        return self.stop() or self._halt

    def _reserve(self) -> int | None:
        """The size of this sender's next claim, or None: the run ends here."""
        with self._tally:
            if not self._ended:
                self.stopped = self.stopped or self._stop_reason()
                self._ended = self.stopped is not None
            if self._ended:
                return None
            size = self.batch_size
            if self.limit is not None:
                size = min(size, self.limit - self._handled - self._reserved)
                if size <= 0:
                    return None  # the limit is taken by the claims in flight
            self._reserved += size
            return size

    def _stop_reason(self) -> StopReason | None:
        if self.stop():
            return "signal"
        if self.limit is not None and self._handled >= self.limit:
            return "limit"
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            return "max_seconds"
        return None

    def _finish(self, size: int, outcome: BatchOutcome | None) -> None:
        with self._tally:
            self._reserved -= size
            if outcome is None:  # nothing was due
                self._ended = True
                return
            self.outcomes.append(outcome)
            self._handled += outcome.handled
            if outcome.unreachable is not None:
                self.unreachable = self.unreachable or outcome.unreachable
                self._ended = self._halt = True
            elif outcome.misconfigured is not None:
                self.misconfigured = self.misconfigured or outcome.misconfigured
                self._ended = self._halt = True
            elif outcome.lease_low and not outcome.handled:
                # Not one mail within a fresh lease (the server took that long to
                # answer): claiming again would only give the batch back again.
                self._ended = True
            elif outcome.stopped:
                if self.stop():
                    self.stopped = self.stopped or "signal"
                self._ended = True
            elif self.on_batch is not None:
                self.on_batch(self._handled, max(self.total, self._handled))


def welcome_mails_retry(*, using: str, users: Iterable[Any] | None = None) -> int:
    """Failed records back to pending, due now, with their attempts and reason cleared."""
    failed = WelcomeMail.objects.using(using).filter(status=Status.FAILED)
    if users is not None:
        failed = failed.filter(user_id__in=[str(pk) for pk in users])
    return failed.update(status=Status.PENDING, due_at=timezone.now(), attempts=0, reason="")


def send_lock(*, using: str, wait: float = 0, enabled: bool = True) -> AbstractContextManager[None]:
    """The run lock of ``welcome_mails send`` from cron: one run per database at a time,
    so two overlapping cron runs do not both open mail connections. Correctness never
    depends on it (the lease does). Taken on ``settings.BACKFILL_LOCK_DATABASE`` when
    that is set (a direct connection where a pooler would not hold it), else on ``using``."""
    if not enabled:
        return nullcontext()
    alias = settings.BACKFILL_LOCK_DATABASE or using
    return database_lock("welcome_mails_send", using=alias, wait=wait)


# -- the claim --


def claim(*, using: str, batch_size: int, users: Sequence[str] | None = None) -> list[Claimed]:
    """Lease up to ``batch_size`` due records to this sender, in one short transaction.

    Expired leases first, then pending records, oldest ``due_at`` first: two
    queries that each read the (status, due_at) index in order and stop at the
    limit, where one ``status IN (...)`` would sort every due row. An expired lease
    at WELCOME_MAIL_MAX_ATTEMPTS is not claimed (:func:`give_up_abandoned` fails
    it). PostgreSQL and
    MariaDB >= 10.6 skip rows another sender is claiming (``SKIP LOCKED``); a
    backend without it waits for that sender instead. SQLite (one writer) claims
    with one ``UPDATE ... RETURNING`` statement per status, which holds the
    write lock from its first read to its last write.
    """
    connection = connections[using]
    now = _now()
    lease = now + timedelta(seconds=settings.WELCOME_MAIL_LEASE_SECONDS)
    rows: list[tuple[Any, Any, int]] = []
    if connection.vendor == "sqlite" and connection.features.can_return_columns_from_insert:
        with transaction.atomic(using=using):
            for status in (Status.SENDING, Status.PENDING):
                if len(rows) < batch_size:
                    due = _due(using, status, now, users)[: batch_size - len(rows)]
                    rows += _update_returning(using, due, lease)
        return [Claimed(pk, user_pk, attempts, lease) for pk, user_pk, attempts in rows]
    skip_locked = connection.features.has_select_for_update_skip_locked
    with transaction.atomic(using=using):
        for status in (Status.SENDING, Status.PENDING):
            if len(rows) < batch_size:
                due = _due(using, status, now, users).select_for_update(skip_locked=skip_locked)
                rows += list(due.values_list("pk", "user_id", "attempts")[: batch_size - len(rows)])
        if rows:
            WelcomeMail.objects.using(using).filter(pk__in=[row[0] for row in rows]).update(
                status=Status.SENDING, due_at=lease, attempts=F("attempts") + 1
            )
    return [Claimed(pk, user_pk, attempts + 1, lease) for pk, user_pk, attempts in rows]


def give_up_abandoned(*, using: str, users: Sequence[str] | None = None) -> int:
    """Fail the records whose lease ran out at WELCOME_MAIL_MAX_ATTEMPTS: each of their
    senders was killed (or stalled) on them, so one more would likely be too. The
    reason says after how many attempts; the number failed.

    Safe beside claims and senders: no claim takes these rows (:func:`_due`), and
    each UPDATE checks the status and the lease's end again (a stalled sender's
    mark that got there first stands)."""
    limit = settings.WELCOME_MAIL_MAX_ATTEMPTS
    abandoned = WelcomeMail.objects.using(using).filter(
        status=Status.SENDING, due_at__lte=_now(), attempts__gte=limit
    )
    if users is not None:
        abandoned = abandoned.filter(user_id__in=users)
    failed = 0
    for attempts in sorted(set(abandoned.values_list("attempts", flat=True))):
        failed += abandoned.filter(attempts=attempts).update(
            status=Status.FAILED,
            reason=f"gave up after {attempts} attempts; the last sender did not finish",
        )
    return failed


def _due(
    using: str, status: str, now: datetime, users: Sequence[str] | None
) -> QuerySet[WelcomeMail]:
    due = WelcomeMail.objects.using(using).filter(status=status, due_at__lte=now)
    if status == Status.SENDING:  # the last attempt's lease ran out: give_up_abandoned's
        due = due.filter(attempts__lt=settings.WELCOME_MAIL_MAX_ATTEMPTS)
    if users is not None:
        due = due.filter(user_id__in=users)
    return due.order_by("due_at")


def _update_returning(
    using: str, due: QuerySet[WelcomeMail], lease: datetime
) -> list[tuple[Any, Any, int]]:
    """SQLite: lease the rows of ``due`` in one statement, returning what it leased."""
    connection = connections[using]
    subquery, params = due.values("pk").query.get_compiler(using=using).as_sql()
    table = connection.ops.quote_name(WelcomeMail._meta.db_table)
    pk, user, status, due_at, attempts = (
        _column(using, name) for name in ("id", "user", "status", "due_at", "attempts")
    )
    sql = (
        f"UPDATE {table} SET {status} = %s, {due_at} = %s, {attempts} = {attempts} + 1 "
        f"WHERE {pk} IN ({subquery}) RETURNING {pk}, {user}, {attempts}"
    )
    lease_value = connection.ops.adapt_datetimefield_value(lease)
    with connection.cursor() as cursor:
        cursor.execute(sql, [Status.SENDING, lease_value, *params])
        rows = cursor.fetchall()
    # Raw rows carry the database's representation (a UUID pk as its hex on SQLite).
    pk_field, user_field = WelcomeMail._meta.pk, WelcomeMail._meta.get_field("user")
    assert pk_field is not None and isinstance(user_field, Field)
    return [(pk_field.to_python(a), user_field.to_python(b), int(n)) for a, b, n in rows]


def _column(using: str, name: str) -> str:
    field = WelcomeMail._meta.get_field(name)
    assert isinstance(field, Field) and field.column
    return connections[using].ops.quote_name(field.column)


def _due_count(*, using: str, users: Sequence[str] | None) -> int:
    now = timezone.now()
    return sum(_due(using, s, now, users).count() for s in (Status.SENDING, Status.PENDING))


def _pending_count(*, using: str) -> int:
    return WelcomeMail.objects.using(using).filter(status=Status.PENDING).count()


# -- one batch: one mail connection, a fenced mark per mail --


@dataclass(frozen=True)
class BatchOutcome:
    """What became of one claim's records."""

    sent: int = 0
    failed: int = 0
    deferred: int = 0
    suppressed: int = 0
    released: int = 0
    unreachable: str | None = None
    stopped: bool = False  # a stop was asked for between two mails
    misconfigured: str | None = None  # the server refused our sender address or login
    lease_low: bool = False  # the rest was given back: too little of the lease was left

    @property
    def handled(self) -> int:
        return self.sent + self.failed + self.deferred + self.suppressed


def deliver(
    *,
    using: str,
    claimed: list[Claimed],
    stop: Callable[[], bool] | None = None,
    renderer: WelcomeRenderer | None = None,
) -> BatchOutcome:
    """Send the claimed records over one mail connection, marking each as it goes.

    Over Django's SMTP backend, a mail ``renderer`` renders exactly (see
    :class:`~profiles.welcome.message.WelcomeRenderer`) goes out as its bytes over
    the backend's own smtplib connection; any other mail, and any other backend,
    through ``send_messages``.

    A record whose lease is no longer ours (it ran out and another sender took
    it) is sent but not marked: counted nowhere. The server unreachable (at the
    start, or on reopening after an error) or refusing our sender address or
    login, a stop between two mails, or less than :func:`lease_margin` of the
    lease left before a mail: the unsent rest is given back, pending and due now.
    """
    batch = _Batch(
        using=using,
        claimed=claimed,
        stop=stop or StopRequest(),
        renderer=renderer or WelcomeRenderer(),
    )
    batch.run()
    return BatchOutcome(
        **batch.counts,
        unreachable=batch.unreachable,
        stopped=batch.stopped,
        misconfigured=batch.misconfigured,
        lease_low=batch.lease_low,
    )


def lease_margin(mailer: BaseEmailBackend) -> float:
    """The least of a lease, in seconds, that must be left to start a mail: a quarter of
    WELCOME_MAIL_LEASE_SECONDS, or the mail connection's timeout if that is longer,
    but never more than half the lease.

    A mail takes milliseconds from a healthy server; the margin is for a slow one.
    The timeout is how long one stalled reply can take before smtplib gives up: a
    mail started with at least that much left outlives one stalled reply within the
    lease. A quarter covers a few slow replies and the mark, and the backends that
    have no timeout. At most half: a fresh lease always sends its first mail, so a
    batch always gets somewhere.
    """
    lease = float(settings.WELCOME_MAIL_LEASE_SECONDS)
    timeout = getattr(mailer, "timeout", None)
    wait = float(timeout) if isinstance(timeout, int | float) else 0.0
    return min(lease / 2, max(lease / 4, wait))


def _now() -> datetime:
    """The time leases are given and checked by (a seam: tests move it on)."""
    return timezone.now()


class _Batch:
    """The claimed records of one batch, sent over one mail connection."""

    def __init__(
        self,
        *,
        using: str,
        claimed: list[Claimed],
        stop: Callable[[], bool],
        renderer: WelcomeRenderer,
    ) -> None:
        self.using, self.claimed, self.stop, self.renderer = using, claimed, stop, renderer
        self.counts: dict[str, int] = dict.fromkeys(
            ("sent", "failed", "deferred", "suppressed", "released"), 0
        )
        self.unreachable: str | None = None
        self.misconfigured: str | None = None
        self.stopped = False
        self.lease_low = False
        self._marks = _Marks(using)

    def run(self) -> None:
        users = (
            get_user_model()
            ._base_manager.using(self.using)
            .in_bulk([record.user_pk for record in self.claimed])
        )
        mailer = mail_connection()
        self._fast = WelcomeRenderer.applies_to(mailer)
        margin = timedelta(seconds=lease_margin(mailer))
        try:
            if not self._open(mailer, self.claimed):
                return
            for index, record in enumerate(self.claimed):
                if self.stop():
                    self.stopped = True
                    self._release(self.claimed[index:], reason=None)
                    return
                if record.lease - _now() < margin:
                    # Another sender may claim these once the lease runs out: give
                    # them back now, for a claim with a fresh lease.
                    self.lease_low = True
                    self._release(self.claimed[index:], reason=None)
                    return
                user = users.get(record.user_pk)
                if user is None:  # deleted since the claim, and its record with it
                    continue
                if not recipient(user):
                    self._finish(record, "suppressed", status=Status.SUPPRESSED, reason=NO_ADDRESS)
                    continue
                sent = self._send(mailer, record, user)
                if sent is None:  # the configuration's fault: the rest goes back too
                    self._release(self.claimed[index + 1 :], reason=self._misconfigured_reason())
                    return
                if not sent and not self._open(mailer, self.claimed[index + 1 :], reopen=True):
                    return
        finally:
            mailer.close()

    def _open(self, mailer: BaseEmailBackend, rest: list[Claimed], *, reopen: bool = False) -> bool:
        """Open (or, after a transient error, reopen) the connection; False, with ``rest``
        given back and ``unreachable`` set, when the server cannot be reached."""
        try:
            if reopen:
                mailer.close()
            mailer.open()
        except smtplib.SMTPAuthenticationError as exc:
            self.misconfigured = (
                f"{_destination(mailer)} refused the login ({exc.smtp_code}): "
                "check EMAIL_HOST_USER and EMAIL_HOST_PASSWORD"
            )
            self._release(rest, reason=self._misconfigured_reason())
            return False
        except (OSError, smtplib.SMTPException) as exc:
            self.unreachable = f"{_destination(mailer)}: {first_line(exc)}"
            self._release(rest, reason=f"mail server unreachable ({self.unreachable})")
            return False
        return True

    def _send(self, mailer: BaseEmailBackend, record: Claimed, user: Any) -> bool | None:
        """Send one mail and mark it; False after a transient error (the connection may
        be gone: the caller reopens it); None when the server refused our sender address
        (``record`` is given back, ``misconfigured`` set: the caller gives back the rest)."""
        identifier = message_id(user.pk)
        try:
            accepted = self._send_one(mailer, user, identifier)
        except smtplib.SMTPSenderRefused as exc:
            if exc.smtp_code < 500:
                verdict, reason = classify(exc)
            else:
                self.misconfigured = (
                    f"{_destination(mailer)} refused the sender address "
                    f"({exc.smtp_code}): check DEFAULT_FROM_EMAIL "
                    f"({settings.DEFAULT_FROM_EMAIL!r}) and the mail settings"
                )
                self._release([record], reason=self._misconfigured_reason())
                return None
        except (OSError, smtplib.SMTPException) as exc:
            verdict, reason = classify(exc)
        except UNSENDABLE as exc:
            # Never the exception's text: it quotes the address.
            verdict = "permanent"
            reason = f"the address cannot be sent to: {type(exc).__name__}"

        else:
            if accepted:
                self._finish(
                    record,
                    "sent",
                    status=Status.SENT,
                    sent_at=timezone.now(),
                    message_id=identifier,
                    reason="",
                )
                return True
            verdict, reason = "transient", "the mail backend sent nothing"
        if verdict == "permanent" or record.attempts >= settings.WELCOME_MAIL_MAX_ATTEMPTS:
            self._finish(record, "failed", status=Status.FAILED, reason=reason)
            return verdict == "permanent"
        backoff = settings.WELCOME_MAIL_RETRY_BACKOFF_SECONDS * 2 ** (record.attempts - 1)
        self._finish(
            record,
            "deferred",
            status=Status.PENDING,
            due_at=timezone.now() + timedelta(seconds=backoff),
            reason=reason,
        )
        return False

    def _send_one(self, mailer: BaseEmailBackend, user: Any, identifier: str) -> int:
        """Send ``user``'s mail: its bytes over the SMTP backend's connection where the
        renderer has them (smtplib raises what the backend would), else the backend's
        ``send_messages``; the number of messages sent."""
        rendered = self.renderer.render(user, mailer, identifier=identifier) if self._fast else None
        if rendered is None:
            return mailer.send_messages([welcome_message(user)])
        connection = mailer.connection  # type: ignore[attr-defined]
        connection.sendmail(rendered.sender, [rendered.to], rendered.data)
        return 1

    def _misconfigured_reason(self) -> str:
        return f"mail settings refused ({self.misconfigured})"

    def _finish(self, record: Claimed, outcome: str, **values: Any) -> None:
        if self._marks.update([record], **values):
            self.counts[outcome] += 1

    def _release(self, records: list[Claimed], *, reason: str | None) -> None:
        """Give ``records`` back unsent: pending, due now, the claim's attempt not spent."""
        values: dict[str, Any] = {"status": Status.PENDING, "due_at": timezone.now()}
        if reason is not None:
            values["reason"] = reason
        self.counts["released"] += self._marks.update(records, unspend=True, **values)


class _Marks:
    """Fenced writes to leased records: each changes a record only while the lease is ours
    (status sending, the claim's ``due_at`` and the record's own ``attempts``).

    Plain SQL, not a queryset's update(): this is the statement run once per mail,
    and building a queryset for it cost about as much as the database's work.
    """

    def __init__(self, using: str) -> None:
        self.using = using
        self._connection = connections[using]
        self._fields = {f.name: f for f in WelcomeMail._meta.concrete_fields}
        self._table = self._connection.ops.quote_name(WelcomeMail._meta.db_table)
        self._single: bool | None = None  # see _one_round_trip
        self._statements: dict[tuple[tuple[str, ...], bool, int], str] = {}

    def update(self, records: list[Claimed], *, unspend: bool = False, **values: Any) -> int:
        """Set ``values`` (and, ``unspend``, give back the claim's attempt) on those of
        ``records`` that are still ours; the number changed."""
        if not records:
            return 0
        # One claim has one lease; its records may differ in attempts (a re-claimed
        # one has more): fence on each one's own, one statement per attempt count.
        by_attempts: dict[int, list[Any]] = {}
        for record in records:
            by_attempts.setdefault(record.attempts, []).append(record.pk)
        params = [self._value(name, value) for name, value in values.items()]
        lease = self._value("due_at", records[0].lease)
        statements = [
            (
                self._sql(tuple(values), unspend, len(pks)),
                [*params, *pks, Status.SENDING.value, lease, attempts],
            )
            for attempts, pks in by_attempts.items()
        ]
        if len(statements) == 1 and self._one_round_trip():
            ((sql, statement_params),) = statements
            with self._connection.cursor() as cursor:
                cursor.execute(f"{sql}; {ASYNC_COMMIT}", statement_params)
                return int(cursor.rowcount)  # the first statement's: the UPDATE
        changed = 0
        with self._transaction(statements=len(statements)), self._connection.cursor() as cursor:
            for sql, statement_params in statements:
                cursor.execute(sql, statement_params)
                changed += cursor.rowcount
        return changed

    def _sql(self, names: tuple[str, ...], unspend: bool, count: int) -> str:
        """The fenced UPDATE setting ``names`` on ``count`` records (made once per shape)."""
        key = (names, unspend, count)
        sql = self._statements.get(key)
        if sql is None:
            qn = self._column
            assignments = [f"{qn(name)} = %s" for name in names]
            if unspend:
                assignments.append(f"{qn('attempts')} = {qn('attempts')} - 1")
            sql = self._statements[key] = (
                f"UPDATE {self._table} SET {', '.join(assignments)} "
                f"WHERE {qn('id')} IN ({', '.join(['%s'] * count)}) "
                f"AND {qn('status')} = %s AND {qn('due_at')} = %s AND {qn('attempts')} = %s"
            )
        return sql

    def _one_round_trip(self) -> bool:
        """PostgreSQL in autocommit with client-side binding (Django's default): the
        UPDATE and the SET LOCAL in one simple query, which the server runs as one
        implicit transaction: one round trip per mail instead of four."""
        if self._single is None:
            self._single = False
            if self._connection.vendor == "postgresql":
                import psycopg

                with self._connection.cursor() as cursor:
                    self._single = isinstance(cursor.cursor, psycopg.ClientCursor)
        return self._single and not self._connection.in_atomic_block

    def _column(self, name: str) -> str:
        column = self._fields[name].column
        assert column is not None  # every concrete field has one
        return self._connection.ops.quote_name(column)

    def _value(self, name: str, value: Any) -> Any:
        return self._fields[name].get_db_prep_save(value, self._connection)

    @contextmanager
    def _transaction(self, *, statements: int) -> Iterator[None]:
        """No transaction for one statement (autocommit), except on PostgreSQL, where
        one lets the commit skip waiting for the WAL flush (SET LOCAL)."""
        postgresql = self._connection.vendor == "postgresql"
        if not postgresql and statements == 1:
            yield
            return
        with transaction.atomic(using=self.using):
            if postgresql:
                with self._connection.cursor() as cursor:
                    cursor.execute(ASYNC_COMMIT)
            yield


def classify(exc: BaseException) -> tuple[Verdict, str]:
    """Whether a send error is the record's for good (5xx, every recipient refused for
    good) or for now (4xx, a lost connection), and the error as one line."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        refusals = "; ".join(
            f"{code} {_text(message)}" for code, message in exc.recipients.values()
        )
        verdict: Verdict = "permanent" if codes and min(codes) >= 500 else "transient"
        return verdict, f"recipient refused: {refusals}"
    if isinstance(exc, smtplib.SMTPResponseException):
        verdict = "permanent" if exc.smtp_code >= 500 else "transient"
        return verdict, f"{exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPServerDisconnected | OSError):
        return "transient", f"connection lost: {first_line(exc)}"
    return "permanent", first_line(exc)


def _text(message: bytes | str) -> str:
    text = message.decode(errors="replace") if isinstance(message, bytes) else message
    return " ".join(text.split())


def _destination(mailer: BaseEmailBackend) -> str:
    host = getattr(mailer, "host", None)
    return f"SMTP {host}:{getattr(mailer, 'port', 25)}" if host else type(mailer).__name__
