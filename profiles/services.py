"""Writes: the one place that knows how to make a profile.

The post_save receiver and ``backfill_profiles`` both go through
:func:`profiles_create_missing`, an insert-if-missing statement that is safe to
run twice, concurrently, or while a receiver creates the same profile.

Any user model: pk values are bound through the pk field's own
``get_db_prep_value`` (a UUID is not an integer, nor on SQLite a type the driver
knows), and the backfill walks the pks by keyset, in the database's own order,
so it never does arithmetic on a pk nor asks for a MIN or MAX its type may lack.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.mail import send_mail
from django.db import IntegrityError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model, QuerySet
from django.utils import timezone

from dbtools.batches import BatchAbandoned, run_batch
from dbtools.stopping import StopReason, StopRequest
from profiles.models import Profile
from profiles.selectors import MissingProfiles, users_without_profile
from profiles.sharding import WHOLE_TABLE, Shard


def profile_defaults() -> dict[str, object]:
    """Field values of a new profile, besides ``user``; shared by every way of creating one."""
    return {"bio": "", "created_at": timezone.now()}


@dataclass(frozen=True)
class _PkRange:
    """Users with ``lower < pk <= upper`` (``<=`` when ``lower_inclusive``; no lower
    bound when ``lower`` is None), the bounds prepared for one connection."""

    lower: Any
    lower_inclusive: bool
    upper: Any

    def where(self, column: str) -> tuple[str, list[Any]]:
        if self.lower is None:
            return f"{column} <= %s", [self.upper]
        op = ">=" if self.lower_inclusive else ">"
        return f"{column} {op} %s AND {column} <= %s", [self.lower, self.upper]


def _pk_range(
    connection: BaseDatabaseWrapper, *, first_pk: Any, after_pk: Any, last_pk: Any
) -> _PkRange:
    if first_pk is not None and after_pk is not None:
        raise TypeError("give first_pk or after_pk, not both")
    pk = get_user_model()._meta.pk
    assert pk is not None
    lower = first_pk if first_pk is not None else after_pk
    return _PkRange(
        lower=None if lower is None else pk.get_db_prep_value(lower, connection),
        lower_inclusive=first_pk is not None,
        upper=pk.get_db_prep_value(last_pk, connection),
    )


def profiles_create_missing(
    *,
    using: str,
    last_pk: Any,
    first_pk: Any = None,
    after_pk: Any = None,
    shard: Shard = WHOLE_TABLE,
    limit: int | None = None,
    optimistic: bool = False,
    leave_users_unlocked: bool = False,
) -> int:
    """Create the missing profiles of users with ``first_pk <= pk <= last_pk``, or
    ``after_pk < pk <= last_pk`` (neither: every pk up to ``last_pk``).

    One set-based statement; returns the number of rows it inserted. The
    one-to-one constraint plus the backend's "ignore duplicates" clause make it
    correct without any lock, even against a concurrent run or receiver.
    ``optimistic`` leaves that clause out where it costs (PostgreSQL); a
    profile created concurrently then raises IntegrityError instead, and the
    caller reruns the batch without it. ``leave_users_unlocked`` is for large
    batches, see :func:`_create_missing_without_user_locks`.
    """
    connection = connections[using]
    users = _pk_range(connection, first_pk=first_pk, after_pk=after_pk, last_pk=last_pk)
    sql, params = _create_missing_sql(
        connection, users, shard=shard, limit=limit, optimistic=optimistic
    )
    if leave_users_unlocked and _can_leave_users_unlocked(connection):
        return _create_missing_without_user_locks(connection, sql, params, users)
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
    connection: BaseDatabaseWrapper, sql: str, params: list[Any], users: _PkRange
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
    in_batch, in_batch_params = users.where(f"u.{user_pk}")
    profiles_in_batch, profiles_in_batch_params = users.where(f"p.{user_fk}")
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION foreign_key_checks = 0")
        try:
            cursor.execute(sql, params)
            created = max(int(cursor.rowcount), 0)
        finally:
            cursor.execute("SET SESSION foreign_key_checks = 1")
        cursor.execute(
            # LENGTH(pk) < 0 is true of no row, for any pk type, and cannot overflow
            # (pk + 1 did, at a BIGINT's largest value). The optimizer cannot prove
            # it false (it folds "pk <> pk" or "pk IS NULL" into Impossible WHERE and
            # would read, and wait for, no row), nor use it instead of the range.
            f"SELECT u.{user_pk} FROM {user_table} u WHERE {in_batch}"
            f" AND LENGTH(u.{user_pk}) < 0 LOCK IN SHARE MODE",
            in_batch_params,
        )
        cursor.execute(
            f"SELECT p.{profile_pk} FROM {profile_table} p"
            f" LEFT JOIN {user_table} u ON u.{user_pk} = p.{user_fk}"
            f" WHERE {profiles_in_batch} AND u.{user_pk} IS NULL",
            profiles_in_batch_params,
        )
        orphans = [pk for (pk,) in cursor.fetchall()]
        if orphans:
            placeholders = ", ".join(["%s"] * len(orphans))
            cursor.execute(
                f"DELETE FROM {profile_table} WHERE {profile_pk} IN ({placeholders})", orphans
            )
    return created - len(orphans)


def profiles_create_missing_sql(
    connection: BaseDatabaseWrapper,
    *,
    last_pk: Any,
    first_pk: Any = None,
    after_pk: Any = None,
    shard: Shard = WHOLE_TABLE,
    limit: int | None = None,
    optimistic: bool = False,
) -> tuple[str, list[Any]]:
    """The insert-if-missing statement for ``connection``'s backend, with its parameters."""
    users = _pk_range(connection, first_pk=first_pk, after_pk=after_pk, last_pk=last_pk)
    return _create_missing_sql(connection, users, shard=shard, limit=limit, optimistic=optimistic)


def _create_missing_sql(
    connection: BaseDatabaseWrapper,
    users: _PkRange,
    *,
    shard: Shard,
    limit: int | None,
    optimistic: bool,
) -> tuple[str, list[Any]]:
    qn = connection.ops.quote_name
    user_table, user_pk, profile_table, _, user_fk = _quoted_names(connection)
    defaults = profile_defaults()
    columns = [qn(_column(Profile, name)) for name in defaults]
    values = [
        _field(Profile, name).get_db_prep_save(value, connection)
        for name, value in defaults.items()
    ]
    in_batch, in_batch_params = users.where(f"u.{user_pk}")
    params: list[Any] = [*values, *in_batch_params]
    select = (
        f"SELECT u.{user_pk}, {', '.join(['%s'] * len(values))} FROM {user_table} u"
        f" WHERE {in_batch}"
    )
    if connection.vendor != "sqlite" or limit is not None:
        # Skip users that have a profile before inserting: PostgreSQL and MySQL
        # would otherwise spend a sequence value on every conflicting row, and
        # LIMIT must count only new profiles. SQLite's ON CONFLICT alone is cheaper.
        # The range repeated on p: PostgreSQL does not carry it across the join by
        # itself and would scan every profile for each batch (quadratic in the table).
        profiles_in_batch, profiles_in_batch_params = users.where(f"p.{user_fk}")
        select += (
            f" AND NOT EXISTS (SELECT 1 FROM {profile_table} p WHERE p.{user_fk} = u.{user_pk}"
            f" AND {profiles_in_batch})"
        )
        params += profiles_in_batch_params
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
    last_pk: Any  # every user up to this pk, in the pk's order, has been covered
    max_pk: Any  # the highest user pk when the run started
    stopped: StopReason | None
    stop_signal: int | None = None  # the signal's number, when one stopped the run
    jobs: int = 1
    # A sharded run's closing count of the users without a profile, in its shard
    # and in the table (None for a whole-table run, or one a signal stopped).
    missing: MissingProfiles | None = None

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
    stop: StopRequest | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    jobs: int = 1,
) -> BackfillResult:
    """Create every missing profile, walking the users in batches of ``batch_size``.

    Each batch is one short transaction and one statement over the next
    ``batch_size`` users in pk order (see :class:`_Batches`), so memory and
    per-batch cost stay flat and gaps in the pks cost nothing. With ``jobs`` >
    1, that many threads run batches at once, each on its own connection (the
    server, not Python, does the work). It stops after the batches in flight at
    ``limit`` profiles, after ``max_seconds``, or when ``stop`` is requested
    (a signal); a rerun picks up what is left. ``on_batch(done, total)`` gets
    the users covered so far against the users there were at the start. It
    does not send post_save: no welcome mails.
    """
    started = time.perf_counter()
    stop = stop or StopRequest()
    jobs = _backfill_jobs(using=using, jobs=jobs, limit=limit)
    tally = threading.Lock()
    created = batches = 0
    stopped: StopReason | None = None
    walk = _Batches(
        using=using,
        batch_size=batch_size,
        count_users=on_batch is not None,
        # Another connection sees only committed users: none inside a transaction.
        look_ahead=not connections[using].in_atomic_block,
    )

    def work() -> None:
        nonlocal created, batches, stopped
        while stopped is None and (batch := walk.claim()) is not None:
            remaining = None if limit is None else limit - created
            try:
                inserted = _backfill_batch(
                    using=using,
                    after_pk=batch.after_pk,
                    last_pk=batch.last_pk,
                    shard=shard,
                    limit=remaining,
                    stop=stop,
                )
            except BatchAbandoned:  # a signal while the batch waited to be retried
                with tally:
                    stopped = stopped or "signal"
                return
            with tally:
                created += inserted
                batches += 1
                walk.finish(batch)
                if on_batch:
                    on_batch(*walk.progress())
                if stopped is not None:  # another thread's batch already ended the run
                    continue
                if limit is not None and created >= limit:
                    stopped = "limit"
                elif max_seconds is not None and time.perf_counter() - started >= max_seconds:
                    stopped = "max_seconds"
                elif stop():
                    stopped = "signal"

    with walk:
        if jobs == 1:
            work()
        else:
            _run_in_threads(work, jobs=jobs, on_error=walk.stop)
    seconds = time.perf_counter() - started
    # What is true of the table, not only of the shard, for the report; not
    # worth a slow count while a signal asks to stop.
    missing = None
    if shard.count > 1 and stopped != "signal":
        missing = users_without_profile(using=using, shard=shard)
    return BackfillResult(
        created=created,
        batches=batches,
        seconds=seconds,
        last_pk=walk.last_pk,
        max_pk=walk.high,
        stopped=stopped,
        stop_signal=stop.signum if stopped == "signal" else None,
        jobs=jobs,
        missing=missing,
    )


def _backfill_batch(
    *,
    using: str,
    after_pk: Any,
    last_pk: Any,
    shard: Shard,
    limit: int | None,
    stop: StopRequest,
) -> int:
    """One batch, first without the conflict clause; rerun with it if a concurrent
    writer made one of its profiles (or deleted one of its users) meanwhile."""

    def attempt(optimistic: bool) -> int:
        return run_batch(
            functools.partial(
                profiles_create_missing,
                using=using,
                after_pk=after_pk,
                last_pk=last_pk,
                shard=shard,
                limit=limit,
                optimistic=optimistic,
                leave_users_unlocked=True,
            ),
            using=using,
            stop=stop,
        )

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


@dataclass
class _Batch:
    number: int  # in the order handed out
    after_pk: Any  # the previous batch's last pk; None for the first batch
    last_pk: Any
    size: int | None  # its users when handed out; None: whatever was left
    finished: bool = False


class _Batches:
    """Hands out the batches of a backfill in pk order, to one thread or several.

    A batch is the next ``batch_size`` users after the previous batch's last
    pk, in the order the database sorts the pk (keyset pagination): one lookup
    served by the pk's index, ``ORDER BY pk LIMIT 2 OFFSET batch_size - 1``,
    finds its last pk (the second row says whether more follow), and the batch
    is ``previous < pk <= last``. No pk arithmetic and no MIN or MAX, so an
    integer of any size, a UUID or a string all work; gaps cost nothing; and
    with no space between consecutive ranges, a user inserted into one (a UUID
    lands anywhere) before its batch runs is covered. Pks are compared only by
    the database, never in Python, whose order may not be a collation's.

    The lookup steps through the batch's index entries, one more pass over the
    table: about 6% of the insert's time on SQLite. With ``look_ahead``, a
    thread of its own, on a connection of its own, looks up the next batch
    while the current one inserts, so that pass costs no time.

    ``last_pk`` is the last pk of the longest run of finished batches from the
    start: what a progress report may claim. Use it as a context manager: on
    the way out, it waits for a lookup in flight and closes its connection.
    """

    def __init__(self, *, using: str, batch_size: int, count_users: bool, look_ahead: bool) -> None:
        self._using = using
        users = get_user_model()._base_manager.db_manager(using)
        self._pks = users.order_by("pk").values_list("pk", flat=True)
        self.high = users.order_by("-pk").values_list("pk", flat=True).first()
        self.last_pk: Any = None
        # Progress needs a total; only then is it worth a count.
        self._total = users.count() if count_users else 0
        self._covered = 0
        # Larger is the same batch (no table has 2**62 rows), and its OFFSET could
        # not be bound.
        self._batch_size = min(batch_size, 2**62)
        self._after: Any = None
        self._more = self.high is not None
        self._handed_out = 0
        self._final: int | None = None  # the number of the batch that reaches ``high``
        self._next_to_finish = 0
        self._unfinished: dict[int, _Batch] = {}
        self._lock = threading.Lock()
        self._ahead: Future[list[Any]] | None = None
        self._looker = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill-lookup")
            if look_ahead
            else None
        )

    def __enter__(self) -> _Batches:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        if self._looker is not None:
            self._looker.submit(connections.close_all)  # the lookup thread's connection
            self._looker.shutdown(wait=True)

    def claim(self) -> _Batch | None:
        with self._lock:
            if not self._more:
                return None
            found = self._ahead.result() if self._ahead else self._lookup(self._after)
            self._ahead = None
            batch = _Batch(
                number=self._handed_out,
                after_pk=self._after,
                last_pk=found[0] if found else self.high,
                size=self._batch_size if found else None,
            )
            self._more = len(found) == 2
            if not self._more:
                self._final = batch.number
            self._after = batch.last_pk
            self._handed_out += 1
            self._unfinished[batch.number] = batch
            if self._more and self._looker is not None:
                self._ahead = self._looker.submit(self._lookup, self._after)
            return batch

    def _lookup(self, after: Any) -> list[Any]:
        """The pk ``batch_size`` users after ``after`` and, if there is one, the pk after it."""
        with _in_pk_order(connections[self._using]):
            return list(self.lookup_query(after))

    def lookup_query(self, after: Any) -> QuerySet[Any, Any]:
        following = self._pks.filter(pk__lte=self.high)
        if after is not None:
            following = following.filter(pk__gt=after)
        return following[self._batch_size - 1 : self._batch_size + 1]

    def finish(self, batch: _Batch) -> None:
        with self._lock:
            batch.finished = True
            while (oldest := self._unfinished.get(self._next_to_finish)) and oldest.finished:
                del self._unfinished[oldest.number]
                self._next_to_finish += 1
                self.last_pk = oldest.last_pk
                self._covered += oldest.size or 0
                if oldest.number == self._final:
                    self._covered = self._total

    def progress(self) -> tuple[int, int]:
        """(users covered from the start, users at the start), once a batch has finished;
        users inserted or deleted meanwhile can make the first overshoot: it is capped."""
        return min(self._covered, self._total), self._total

    def stop(self) -> None:
        """Hand out no further batch."""
        with self._lock:
            self._more = False


@contextmanager
def _in_pk_order(connection: BaseDatabaseWrapper) -> Iterator[None]:
    """Have PostgreSQL walk the pk's index for ``ORDER BY pk LIMIT n OFFSET m``.

    On a table it has no statistics of yet (just bulk-loaded: the usual case
    for a backfill), PostgreSQL takes the range for a few hundred rows and
    plans a scan of all of it and a sort: ten times as slow as walking the
    index, which yields that order as it is. Told not to sort, it walks the
    index. ``SET LOCAL``, so it holds through a transaction pooler and ends
    with the lookup.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('enable_sort'), set_config('enable_sort', 'off', true)"
        )
        [previous, _] = cursor.fetchone()
        yield
        # Inside a caller's transaction, SET LOCAL would outlast the lookup. (On an
        # error, the savepoint's rollback undoes it.)
        cursor.execute("SELECT set_config('enable_sort', %s, true)", [previous])


def _quoted_names(connection: BaseDatabaseWrapper) -> tuple[str, str, str, str, str]:
    """User table, user pk, profile table, profile pk, profile's user column: quoted."""
    qn = connection.ops.quote_name
    user_model = get_user_model()
    user_pk, profile_pk = user_model._meta.pk, Profile._meta.pk
    assert user_pk is not None and profile_pk is not None
    return (
        qn(user_model._meta.db_table),
        qn(_column(user_model, user_pk.name)),
        qn(Profile._meta.db_table),
        qn(_column(Profile, profile_pk.name)),
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
    email = getattr(user, user.get_email_field_name(), "")
    if not email:
        return 0
    return send_mail(
        subject="Welcome!",
        message=f"Hello {user.get_username()}, your account is ready.",
        from_email=None,
        recipient_list=[email],
    )
