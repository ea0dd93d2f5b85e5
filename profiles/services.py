"""Writes: the one place that knows how to make a profile.

The post_save receiver and ``backfill_profiles`` both go through
:func:`profiles_create_missing`, an insert-if-missing statement that is safe to
run twice, concurrently, or while a receiver creates the same profile.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.mail import send_mail
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Max, Min, Model
from django.utils import timezone

from profiles.batches import run_batch
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
    limit: int | None = None,
) -> int:  # fmt: skip
    """Create the missing profiles of users with ``first_pk <= pk <= last_pk``.

    One set-based statement; returns the number of rows it inserted. The
    one-to-one constraint plus the backend's "ignore duplicates" clause make it
    correct without any lock, even against a concurrent run or receiver.
    """
    connection = connections[using]
    sql, params = profiles_create_missing_sql(
        connection, first_pk=first_pk, last_pk=last_pk, shard=shard, limit=limit
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return max(int(cursor.rowcount), 0)


def profiles_create_missing_sql(
    connection: BaseDatabaseWrapper, *, first_pk: int, last_pk: int,
    shard: Shard = WHOLE_TABLE, limit: int | None = None,
) -> tuple[str, list[Any]]:  # fmt: skip
    """The insert-if-missing statement for ``connection``'s backend, with its parameters."""
    qn = connection.ops.quote_name
    user_model = get_user_model()
    user_table = qn(user_model._meta.db_table)
    user_pk = qn(_column(user_model, user_model._meta.pk.name))
    profile_table = qn(Profile._meta.db_table)
    user_fk = qn(_column(Profile, "user"))
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
    last_pk: int | None  # the highest user pk the run has covered
    max_pk: int | None  # the highest user pk when the run started
    stopped: Literal["limit", "max_seconds", "signal"] | None

    @property
    def profiles_per_second(self) -> float:
        return self.created / self.seconds if self.seconds > 0 else 0.0


def profiles_backfill(
    *,
    using: str,
    batch_size: int,
    shard: Shard = WHOLE_TABLE,
    limit: int | None = None,
    max_seconds: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_batch: Callable[[int, int], None] | None = None,
) -> BackfillResult:
    """Create every missing profile, walking the user pks in ranges of ``batch_size``.

    Each range is one short transaction and one statement; gaps in the pks are
    skipped with an index lookup, so memory and per-batch cost stay flat. It
    stops after the batch in flight at ``limit`` profiles, after
    ``max_seconds``, or when ``should_stop()`` says so (a signal); a rerun
    picks up what is left. It does not send post_save: no welcome mails.
    """
    started = time.perf_counter()
    users = get_user_model()._default_manager.db_manager(using)
    bounds = users.aggregate(low=Min("pk"), high=Max("pk"))
    low, high = bounds["low"], bounds["high"]
    created = batches = 0
    last_pk: int | None = None
    stopped: Literal["limit", "max_seconds", "signal"] | None = None
    start = low
    while start is not None and start <= high:
        end = min(start + batch_size - 1, high)
        remaining = None if limit is None else limit - created
        created += run_batch(
            functools.partial(
                profiles_create_missing,
                using=using, first_pk=start, last_pk=end, shard=shard, limit=remaining,
            ),
            using=using,
        )  # fmt: skip
        batches += 1
        last_pk = end
        if on_batch:
            on_batch(end - low + 1, high - low + 1)
        if limit is not None and created >= limit:
            stopped = "limit"
        elif max_seconds is not None and time.perf_counter() - started >= max_seconds:
            stopped = "max_seconds"
        elif should_stop():
            stopped = "signal"
        if stopped:
            break
        start = users.filter(pk__gt=end, pk__lte=high).aggregate(next=Min("pk"))["next"]
    return BackfillResult(
        created=created, batches=batches, seconds=time.perf_counter() - started,
        last_pk=last_pk, max_pk=high, stopped=stopped,
    )  # fmt: skip


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
