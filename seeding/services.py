"""Writes: seed fake users, and purge them again.

``--via bulk`` inserts each batch with the driver's bulk path (``COPY`` on
PostgreSQL, ``executemany`` elsewhere) inside one transaction: no ``save()``,
so no signal fires, exactly like ``bulk_create``, but without the per-object
preparation that caps ``bulk_create`` near 20k rows/s. ``--via save`` calls
``save()`` on each user, so every receiver runs.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Literal, cast

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, connections, transaction
from django.db.models import Field, Max, Q
from django.utils import timezone

from profiles.batches import BatchAbandoned, run_batch
from profiles.locks import LockHeld, database_lock
from profiles.models import Profile
from seeding.generator import FAKE_USER_FIELDS, FakeUser, FakeUsers, username_prefix
from seeding.models import SeedRun

Via = Literal["save", "bulk"]

USER_FIELDS = (
    "username", "first_name", "last_name", "email", "password",
    "is_staff", "is_superuser", "is_active", "date_joined",
)  # fmt: skip


_MYSQL_ROWS_PER_STATEMENT = 5000  # ~1 MB of user rows; MariaDB's max_allowed_packet is 16 MB
_PG_COPY_TYPES = {"CharField": "text", "EmailField": "text", "BooleanField": "bool",
                  "DateTimeField": "timestamptz"}  # fmt: skip


@dataclass(frozen=True)
class SeedResult:
    run_number: int | None
    seed: int
    via: Via
    requested: int
    created: int
    resumed_after: int  # users an interrupted run with the same arguments had committed
    profiles_created: int
    users_without_profile: int
    seconds: float
    dry_run: bool
    interrupted_by: int | None  # the signal number, when a SIGINT/SIGTERM stopped the run

    @property
    def users_per_second(self) -> float:
        return self.created / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class PurgeResult:
    runs: int
    users: int
    profiles: int
    dry_run: bool


def password_hash(password: str | None) -> str:
    """Hash once per run: the default hasher takes ~0.3 s, too slow to pay per user."""
    return make_password(password)


def users_seed(
    *,
    count: int,
    via: Via,
    batch_size: int,
    seed: int | None,
    locales: Sequence[str],
    password: str | None,
    using: str,
    dry_run: bool = False,
    on_batch: Callable[[int, int], None] | None = None,
    stop_signal: Callable[[], int | None] = lambda: None,
) -> SeedResult:
    """Create ``count`` fake users; stop cleanly when asked to.

    ``stop_signal()`` returns the number of a signal that asked the run to
    stop (the command's SIGINT/SIGTERM handler records it). It is read before
    each batch commits: the batch in flight rolls back, never half-written, and
    no exception lands inside a driver call. A KeyboardInterrupt does the same
    for callers without a handler. The batches already committed stay and are
    counted. With an explicit ``seed``, a run with the same arguments that was
    interrupted (or killed) is resumed where it stopped, so the result is the
    one an uninterrupted run gives.
    """
    started = time.perf_counter()
    resumable = seed is not None
    seed = seed if seed is not None else secrets.randbelow(2**31)
    hashed = password_hash(password)
    if dry_run:
        generated = 0
        for batch in FakeUsers(seed=seed, run_number=0, locales=locales).batches(
            count=count, batch_size=batch_size
        ):
            _validate(batch)
            generated += len(batch)
            if on_batch:
                on_batch(generated, count)
            if stop_signal() is not None:
                break
        return SeedResult(
            run_number=None, seed=seed, via=via, requested=count, created=0, resumed_after=0,
            profiles_created=0, users_without_profile=_users_without_profile(using),
            seconds=time.perf_counter() - started, dry_run=True, interrupted_by=stop_signal(),
        )  # fmt: skip

    interrupted_by: int | None = None
    with ExitStack() as stack:
        run = None
        if resumable:
            # Held for the whole run: a second process with the same seed starts a
            # run of its own instead of resuming this one under our feet.
            with contextlib.suppress(LockHeld):
                stack.enter_context(database_lock(f"seed_users:seed{seed}", using=using))
                run = _unfinished_run(using=using, seed=seed, via=via, count=count, locales=locales)
        if run is None:
            run = _reserve_run(using=using, seed=seed, via=via, count=count, locales=locales)
        done = _seeded_users(run.number, using).count()
        users = FakeUsers(seed=seed, run_number=run.number, locales=locales)
        users.skip(done)
        insert = _save_batch if via == "save" else _bulk_insert_batch
        now = timezone.now()
        inserted = done
        try:
            for batch in users.batches(count=count - done, batch_size=batch_size):
                work = functools.partial(insert, batch, password=hashed, joined=now, using=using)
                run_batch(
                    functools.partial(_unless_stopped, work, stop_signal),
                    using=using,
                    # Fake users: a batch lost to a server crash is recreated by a rerun.
                    durable=False,
                    should_stop=lambda: stop_signal() is not None,
                )
                inserted += len(batch)
                if on_batch:
                    on_batch(inserted, count)
        except _StopRequested as exc:
            interrupted_by = exc.signum
        except BatchAbandoned:
            interrupted_by = stop_signal()
        except KeyboardInterrupt:
            interrupted_by = signal.SIGINT
        seconds = time.perf_counter() - started
        # Count from the database: the truth, even when a signal cut a batch short.
        in_run = _seeded_users(run.number, using).count()
        SeedRun.objects.using(using).filter(pk=run.pk).update(
            created=in_run, finished_at=timezone.now() if in_run == count else None
        )
    profiles_created = (
        Profile.objects.using(using)
        .filter(user__username__startswith=username_prefix(run.number))
        .count()
    )
    return SeedResult(
        run_number=run.number, seed=seed, via=via, requested=count, created=in_run - done,
        resumed_after=done, profiles_created=profiles_created,
        users_without_profile=_users_without_profile(using), seconds=seconds, dry_run=False,
        interrupted_by=interrupted_by,
    )  # fmt: skip


def _unfinished_run(
    *, using: str, seed: int, via: Via, count: int, locales: Sequence[str]
) -> SeedRun | None:
    return (
        SeedRun.objects.using(using)
        .filter(seed=seed, via=via, requested=count, locales=",".join(locales))
        .filter(finished_at__isnull=True)
        .order_by("number")
        .first()
    )


def seeded_users_purge(*, using: str, dry_run: bool = False, batch_size: int = 5000) -> PurgeResult:
    """Delete every user a seed run created, with their profiles, and the runs themselves.

    Only users in a recorded run's namespace ("seed<N>-") are touched, in
    batches, so memory stays flat and locks stay short.
    """
    runs = list(SeedRun.objects.using(using).order_by("number"))
    users = profiles = 0
    for run in runs:
        seeded = _seeded_users(run.number, using)
        users += seeded.count()
        profiles += Profile.objects.using(using).filter(user__in=seeded).count()
        if dry_run:
            continue
        while True:
            with transaction.atomic(using=using):
                pks = list(seeded.order_by("pk").values_list("pk", flat=True)[:batch_size])
                if not pks:
                    break
                get_user_model()._default_manager.db_manager(using).filter(pk__in=pks).delete()
        SeedRun.objects.using(using).filter(pk=run.pk).delete()
    return PurgeResult(runs=len(runs), users=users, profiles=profiles, dry_run=dry_run)


# -- helpers --


class _StopRequested(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _unless_stopped(work: Callable[[], None], stop_signal: Callable[[], int | None]) -> None:
    """Run one batch's inserts, then roll them back (by raising) if a stop was asked for."""
    work()
    signum = stop_signal()
    if signum is not None:
        raise _StopRequested(signum)


def _reserve_run(*, using: str, seed: int, via: Via, count: int, locales: Sequence[str]) -> SeedRun:
    """Take the next free run number; its namespace is this run's alone.

    The unique constraint on ``number`` settles a race between two processes;
    a namespace somebody else's users already occupy is skipped.
    """
    runs = SeedRun.objects.using(using)
    number = (runs.aggregate(highest=Max("number"))["highest"] or 0) + 1
    while True:
        if _namespace_taken(number, using):
            number += 1
            continue
        try:
            with transaction.atomic(using=using):
                return runs.create(
                    number=number, via=via, seed=seed, requested=count, locales=",".join(locales)
                )
        except IntegrityError:
            number += 1


def _namespace_taken(number: int, using: str) -> bool:
    prefix = username_prefix(number)
    users = get_user_model()._default_manager.db_manager(using)
    return users.filter(Q(username__startswith=prefix) | Q(email__startswith=prefix)).exists()


def _seeded_users(run_number: int, using: str) -> Any:
    return (
        get_user_model()
        ._default_manager.db_manager(using)
        .filter(username__startswith=username_prefix(run_number))
    )


def _users_without_profile(using: str) -> int:
    return get_user_model()._default_manager.db_manager(using).filter(profile__isnull=True).count()


def _validate(batch: Sequence[FakeUser]) -> None:
    user_model = get_user_model()
    limits = {
        name: cast("Field[Any, Any]", user_model._meta.get_field(name)).max_length
        for name in FAKE_USER_FIELDS
    }
    for user in batch:
        for name, value in zip(FAKE_USER_FIELDS, user, strict=True):
            limit = limits[name]
            if limit is not None and len(value) > limit:
                raise ValueError(f"generated {name} longer than {limit} characters")


def _save_batch(batch: Sequence[FakeUser], *, password: str, joined: Any, using: str) -> None:
    user_model = get_user_model()
    for username, first_name, last_name, email in batch:
        user = user_model(
            username=username, first_name=first_name, last_name=last_name,
            email=email, password=password, date_joined=joined,
        )  # fmt: skip
        user.save(using=using)


def _bulk_insert_batch(
    batch: Sequence[FakeUser], *, password: str, joined: Any, using: str
) -> None:
    connection = connections[using]
    meta = get_user_model()._meta
    qn = connection.ops.quote_name
    fields = [cast("Field[Any, Any]", meta.get_field(name)) for name in USER_FIELDS]
    columns = ", ".join(qn(cast(str, f.column)) for f in fields)
    table = qn(meta.db_table)
    prep = {f.name: f for f in fields}
    joined_db = prep["date_joined"].get_db_prep_save(joined, connection)
    false = prep["is_staff"].get_db_prep_save(False, connection)
    true = prep["is_active"].get_db_prep_save(True, connection)
    rows = [(u, f, la, e, password, false, false, true, joined_db) for u, f, la, e in batch]
    # wrap_database_errors: the raw COPY cursor's errors become Django's, like the rest.
    with connection.cursor() as cursor, connection.wrap_database_errors:
        if connection.vendor == "postgresql":
            # Binary COPY: no text parsing on either side, the fastest path psycopg has.
            # The queued writer sends from a thread, so the server inserts while Python
            # still encodes rows.
            from psycopg.copy import QueuedLibpqWriter  # psycopg is the postgres extra

            binary = f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)"
            raw = cursor.cursor
            with raw.copy(binary, writer=QueuedLibpqWriter(raw)) as copy:
                copy.set_types([_PG_COPY_TYPES[f.get_internal_type()] for f in fields])
                for row in rows:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(fields))
            sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"
            # MySQLdb sends one multi-row INSERT per call: keep each well under
            # max_allowed_packet whatever --batch-size is (still one transaction).
            step = _MYSQL_ROWS_PER_STATEMENT if connection.vendor == "mysql" else len(rows)
            for start in range(0, len(rows), max(step, 1)):
                cursor.executemany(sql, rows[start : start + step])
