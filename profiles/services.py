"""Writes: the one place that knows how to make a profile.

The post_save receiver and ``backfill_profiles`` both go through
:func:`profiles_create_missing`, an insert-if-missing statement that is safe to
run twice, concurrently, or while a receiver creates the same profile.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, cast

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.mail import send_mail
from django.db import IntegrityError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Max, Min, Model
from django.utils import timezone

from profiles.batches import BatchAbandoned, run_batch
from profiles.models import Profile


def profile_defaults() -> dict[str, object]:
    """Field values of a new profile, besides ``user``; shared by every way of creating one."""
    return {"bio": "", "created_at": timezone.now()}


@dataclass(frozen=True)
class Shard:
    """Shard ``number`` of ``count``: the users whose pk % count == number - 1.

    A residue class, not a pk range, so shards stay disjoint and complete
    whatever batch size each process uses and however the table grows.
    """

    number: int = 1
    count: int = 1

    def __str__(self) -> str:
        return f"{self.number}/{self.count}"


WHOLE_TABLE = Shard()


def profiles_create_missing(
    *, using: str, first_pk: int, last_pk: int, shard: Shard = WHOLE_TABLE,
    limit: int | None = None, optimistic: bool = False, leave_users_unlocked: bool = False,
) -> int:  # fmt: skip
    """Create the missing profiles of users with ``first_pk <= pk <= last_pk``.

    One set-based statement; returns the number of rows it inserted. The
    one-to-one constraint plus the backend's "ignore duplicates" clause make it
    correct without any lock, even against a concurrent run or receiver.
    ``optimistic`` leaves that clause out where it costs (PostgreSQL); a
    profile created concurrently then raises IntegrityError instead, and the
    caller reruns the batch without it. ``leave_users_unlocked`` is for large
    batches, see :func:`_create_missing_without_user_locks`.
    """
    connection = connections[using]
    sql, params = profiles_create_missing_sql(
        connection, first_pk=first_pk, last_pk=last_pk, shard=shard, limit=limit,
        optimistic=optimistic,
    )  # fmt: skip
    if leave_users_unlocked and _can_leave_users_unlocked(connection):
        return _create_missing_without_user_locks(
            connection, sql, params, first_pk=first_pk, last_pk=last_pk
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return max(int(cursor.rowcount), 0)


def _can_leave_users_unlocked(connection: BaseDatabaseWrapper) -> bool:
    """InnoDB's foreign-key check share-locks each referenced user row until commit,
    so an UPDATE of any user in a batch would wait for the whole batch. Inside a
    transaction at READ COMMITTED (Django's default on MySQL) we can do without."""
    return (
        connection.vendor == "mysql"
        and connection.in_atomic_block
        and getattr(connection, "isolation_level", None) == "read committed"
    )


def _create_missing_without_user_locks(
    connection: BaseDatabaseWrapper, sql: str, params: list[Any], *, first_pk: int, last_pk: int
) -> int:
    """Insert with the foreign-key check off, then check the users ourselves, before commit.

    The insert may race a DELETE of one of its users. A deleter that comes after
    it finds our uncommitted profile in its own foreign-key check and fails (or,
    between our insert and our locking read, deadlocks with us: InnoDB rolls one
    of the two back, and a batch is retried), as it would with the check on.
    Writes to our users not yet committed (such a DELETE, or an UPDATE in flight)
    are waited out by a locking read that no row matches, so READ COMMITTED
    lets go of each row lock at once; a fresh read then finds the profiles whose
    user is gone, and they are deleted again. Nothing is left locked for
    ordinary traffic.
    """
    user_table, user_pk, profile_table, profile_pk, user_fk = _quoted_names(connection)
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION foreign_key_checks = 0")
        try:
            cursor.execute(sql, params)
            created = max(int(cursor.rowcount), 0)
        finally:
            cursor.execute("SET SESSION foreign_key_checks = 1")
        cursor.execute(
            # "+ 1 = 0": true of no row, and not a range the optimizer could use instead.
            f"SELECT u.{user_pk} FROM {user_table} u WHERE u.{user_pk} >= %s"
            f" AND u.{user_pk} <= %s AND u.{user_pk} + 1 = 0 LOCK IN SHARE MODE",
            [first_pk, last_pk],
        )
        cursor.execute(
            f"SELECT p.{profile_pk} FROM {profile_table} p"
            f" LEFT JOIN {user_table} u ON u.{user_pk} = p.{user_fk}"
            f" WHERE p.{user_fk} >= %s AND p.{user_fk} <= %s AND u.{user_pk} IS NULL",
            [first_pk, last_pk],
        )
        orphans = [pk for (pk,) in cursor.fetchall()]
        if orphans:
            placeholders = ", ".join(["%s"] * len(orphans))
            cursor.execute(
                f"DELETE FROM {profile_table} WHERE {profile_pk} IN ({placeholders})", orphans
            )
    return created - len(orphans)


def profiles_create_missing_sql(
    connection: BaseDatabaseWrapper, *, first_pk: int, last_pk: int,
    shard: Shard = WHOLE_TABLE, limit: int | None = None, optimistic: bool = False,
) -> tuple[str, list[Any]]:  # fmt: skip
    """The insert-if-missing statement for ``connection``'s backend, with its parameters."""
    qn = connection.ops.quote_name
    user_table, user_pk, profile_table, _, user_fk = _quoted_names(connection)
    defaults = profile_defaults()
    columns = [qn(_column(Profile, name)) for name in defaults]
    values = [
        _field(Profile, name).get_db_prep_save(value, connection)
        for name, value in defaults.items()
    ]
    params: list[Any] = [*values, first_pk, last_pk]
    select = (
        f"SELECT u.{user_pk}, {', '.join(['%s'] * len(values))} FROM {user_table} u"
        f" WHERE u.{user_pk} >= %s AND u.{user_pk} <= %s"
    )
    if connection.vendor != "sqlite" or limit is not None:
        # Skip users that have a profile before inserting: PostgreSQL and MySQL
        # would otherwise spend a sequence value on every conflicting row, and
        # LIMIT must count only new profiles. SQLite's ON CONFLICT alone is cheaper.
        # The range repeated on p: PostgreSQL does not carry it across the join by
        # itself and would scan every profile for each batch (quadratic in the table).
        select += (
            f" AND NOT EXISTS (SELECT 1 FROM {profile_table} p WHERE p.{user_fk} = u.{user_pk}"
            f" AND p.{user_fk} >= %s AND p.{user_fk} <= %s)"
        )
        params += [first_pk, last_pk]
    if shard.count > 1:
        select += f" AND u.{user_pk} %% %s = %s"
        params += [shard.count, shard.number - 1]
    if limit is not None:
        select += f" ORDER BY u.{user_pk} LIMIT %s"
        params.append(limit)
    target = f"{profile_table} ({user_fk}, {', '.join(columns)})"
    if connection.vendor == "mysql":
        sql = f"INSERT IGNORE INTO {target} {select}"
    elif optimistic and connection.vendor == "postgresql":
        sql = f"INSERT INTO {target} {select}"  # NOT EXISTS above skips the usual case
    else:
        # PostgreSQL and SQLite (3.24+) both know ON CONFLICT.
        sql = f"INSERT INTO {target} {select} ON CONFLICT ({user_fk}) DO NOTHING"
    return sql, params


def default_batch_size(*, using: str) -> int:
    """SQLite has one writer and cheap commits, so fewer, larger batches are faster there."""
    return 100_000 if connections[using].vendor == "sqlite" else 10_000


@dataclass(frozen=True)
class BackfillResult:
    created: int
    batches: int
    seconds: float
    last_pk: int | None  # every user pk up to this one has been covered
    max_pk: int | None  # the highest user pk when the run started
    stopped: Literal["limit", "max_seconds", "signal"] | None
    jobs: int = 1

    @property
    def profiles_per_second(self) -> float:
        return self.created / self.seconds if self.seconds > 0 else 0.0


def _backfill_jobs(*, using: str, jobs: int, limit: int | None) -> int:
    """How many batches may run at once. One on SQLite (one writer), under a limit
    (exact only when one batch at a time takes from it) and inside a transaction
    (other connections cannot see its rows)."""
    connection = connections[using]
    if connection.vendor == "sqlite" or limit is not None or connection.in_atomic_block:
        return 1
    return jobs


def profiles_backfill(
    *,
    using: str,
    batch_size: int,
    shard: Shard = WHOLE_TABLE,
    limit: int | None = None,
    max_seconds: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_batch: Callable[[int, int], None] | None = None,
    jobs: int = 1,
) -> BackfillResult:
    """Create every missing profile, walking the user pks in ranges of ``batch_size``.

    Each range is one short transaction and one statement; gaps in the pks are
    skipped with an index lookup, so memory and per-batch cost stay flat. With
    ``jobs`` > 1, that many threads run batches at once, each on its own
    connection (the server, not Python, does the work). It stops after the
    batches in flight at ``limit`` profiles, after ``max_seconds``, or when
    ``should_stop()`` says so (a signal); a rerun picks up what is left. It
    does not send post_save: no welcome mails.
    """
    started = time.perf_counter()
    users = get_user_model()._default_manager.db_manager(using)
    bounds = users.aggregate(low=Min("pk"), high=Max("pk"))
    ranges = _PkRanges(low=bounds["low"], high=bounds["high"], batch_size=batch_size)
    jobs = _backfill_jobs(using=using, jobs=jobs, limit=limit)
    tally = threading.Lock()
    created = batches = 0
    stopped: Literal["limit", "max_seconds", "signal"] | None = None

    def work() -> None:
        nonlocal created, batches, stopped
        while stopped is None and (claimed := ranges.claim(using)) is not None:
            first_pk, last_pk = claimed
            remaining = None if limit is None else limit - created
            try:
                inserted = _backfill_batch(
                    using=using, first_pk=first_pk, last_pk=last_pk, shard=shard,
                    limit=remaining, should_stop=should_stop,
                )  # fmt: skip
            except BatchAbandoned:  # a signal while the batch waited to be retried
                with tally:
                    stopped = stopped or "signal"
                return
            with tally:
                created += inserted
                batches += 1
                ranges.finish(first_pk)
                if on_batch:
                    on_batch(*ranges.progress())
                if stopped is not None:  # another thread's batch already ended the run
                    continue
                if limit is not None and created >= limit:
                    stopped = "limit"
                elif max_seconds is not None and time.perf_counter() - started >= max_seconds:
                    stopped = "max_seconds"
                elif should_stop():
                    stopped = "signal"

    if jobs == 1:
        work()
    else:
        _run_in_threads(work, jobs=jobs, on_error=ranges.close)
    return BackfillResult(
        created=created, batches=batches, seconds=time.perf_counter() - started,
        last_pk=ranges.last_pk, max_pk=ranges.high, stopped=stopped, jobs=jobs,
    )  # fmt: skip


def _backfill_batch(
    *, using: str, first_pk: int, last_pk: int, shard: Shard, limit: int | None,
    should_stop: Callable[[], bool],
) -> int:  # fmt: skip
    """One batch, first without the conflict clause; rerun with it if a concurrent
    writer made one of its profiles (or deleted one of its users) meanwhile."""

    def attempt(optimistic: bool) -> int:
        return run_batch(
            functools.partial(
                profiles_create_missing, using=using, first_pk=first_pk, last_pk=last_pk,
                shard=shard, limit=limit, optimistic=optimistic, leave_users_unlocked=True,
            ),
            using=using, should_stop=should_stop,
        )  # fmt: skip

    try:
        return attempt(optimistic=True)
    except IntegrityError:  # rolled back whole; nothing of it was written
        return attempt(optimistic=False)


def _run_in_threads(work: Callable[[], None], *, jobs: int, on_error: Callable[[], None]) -> None:
    """Run ``work`` in ``jobs`` threads, each with its own connections; once every
    thread has finished its batch in flight, re-raise an error one of them met."""

    def in_own_connection() -> None:
        try:
            work()
        except BaseException:
            on_error()  # the other threads claim no further batch
            raise
        finally:
            connections.close_all()  # this thread's connections only

    try:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="backfill") as pool:
            futures = [pool.submit(in_own_connection) for _ in range(jobs)]
    except BaseException:  # e.g. Ctrl-C in a caller without a signal handler
        on_error()
        raise
    for future in futures:
        future.result()


class _PkRanges:
    """Hands out the pk ranges of a backfill in order, to one thread or several.

    The next range starts at the first pk after the last one handed out (an
    index lookup), so gaps cost nothing. ``last_pk`` is the end of the longest
    run of finished ranges from the start: what a progress report may claim.
    """

    def __init__(self, *, low: int | None, high: int | None, batch_size: int) -> None:
        self.low, self.high = low, high
        self.last_pk: int | None = None
        self._next = low
        self._batch_size = batch_size
        self._lock = threading.Lock()
        self._unfinished: dict[int, tuple[int, bool]] = {}  # first pk: (last pk, finished)

    def claim(self, using: str) -> tuple[int, int] | None:
        with self._lock:
            if self._next is None or self.high is None or self._next > self.high:
                return None
            first_pk = self._next
            last_pk = min(first_pk + self._batch_size - 1, self.high)
            users = get_user_model()._default_manager.db_manager(using)
            upcoming = users.filter(pk__gt=last_pk, pk__lte=self.high)
            self._next = upcoming.aggregate(next=Min("pk"))["next"]
            self._unfinished[first_pk] = (last_pk, False)
            return first_pk, last_pk

    def progress(self) -> tuple[int, int]:
        """(pks covered from the start, pks in all), once a range has finished."""
        assert self.low is not None and self.high is not None
        covered = 0 if self.last_pk is None else self.last_pk - self.low + 1
        return covered, self.high - self.low + 1

    def finish(self, first_pk: int) -> None:
        with self._lock:
            self._unfinished[first_pk] = (self._unfinished[first_pk][0], True)
            while self._unfinished:
                oldest = min(self._unfinished)
                last_pk, finished = self._unfinished[oldest]
                if not finished:
                    break
                del self._unfinished[oldest]
                self.last_pk = last_pk

    def close(self) -> None:
        with self._lock:
            self._next = None


def _quoted_names(connection: BaseDatabaseWrapper) -> tuple[str, str, str, str, str]:
    """User table, user pk, profile table, profile pk, profile's user column: quoted."""
    qn = connection.ops.quote_name
    user_model = get_user_model()
    return (
        qn(user_model._meta.db_table),
        qn(_column(user_model, user_model._meta.pk.name)),
        qn(Profile._meta.db_table),
        qn(_column(Profile, Profile._meta.pk.name)),
        qn(_column(Profile, "user")),
    )


def _field(model: type[Model], name: str) -> Field[Any, Any]:
    return cast("Field[Any, Any]", model._meta.get_field(name))


def _column(model: type[Model], name: str) -> str:
    return cast(str, _field(model, name).column)


def profile_ensure(*, user: AbstractBaseUser, using: str) -> bool:
    """Give ``user`` a profile unless it has one; True when one was created."""
    return profiles_create_missing(using=using, first_pk=user.pk, last_pk=user.pk) == 1


def welcome_email_send(*, user: AbstractBaseUser) -> int:
    email = getattr(user, "email", "")
    if not email:
        return 0
    return send_mail(
        subject="Welcome!",
        message=f"Hello {user.get_username()}, your account is ready.",
        from_email=None,
        recipient_list=[email],
    )
