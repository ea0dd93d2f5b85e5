"""Writes: seed fake users, and purge them again.

``--via bulk`` inserts each batch with the driver's bulk path (``COPY`` on
PostgreSQL, ``executemany`` elsewhere) inside one transaction: no ``save()``,
so no signal fires, exactly like ``bulk_create``, but without the per-object
preparation that caps ``bulk_create`` near 20k rows/s. ``--via save`` calls
``save()`` on each user, so every receiver runs.

Every user a run creates is recorded as a ``SeededUser`` row in the same
transaction, and purging deletes exactly those users: never a user whose
name merely looks seeded. Each run holds a lock of its own for its whole life
(``seed_users:run<N>``), so a run in progress is never resumed by another
process, nor purged under its feet; a run whose process died leaves its lock
free, and a rerun with the same arguments resumes it.
"""

from __future__ import annotations

import functools
import secrets
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, connections, transaction
from django.db.models import Field, Max, Q
from django.db.models.fields import AutoFieldMixin
from django.utils import timezone

from dbtools.batches import BatchAbandoned, run_batch
from dbtools.locks import LockHeld, database_lock
from dbtools.stopping import StopReason, StopRequest
from profiles.models import Profile
from profiles.selectors import users_without_profile_count
from seeding.errors import SeedArgumentError
from seeding.generator import FakeUser, FakeUsers, username_prefix
from seeding.inserts import bulk_insert_batch, save_batch
from seeding.models import SeededUser, SeedRun
from seeding.userfields import UserColumns, user_columns

Via = Literal["save", "bulk"]
T = TypeVar("T")


@dataclass(frozen=True)
class SeedResult:
    run_number: int | None
    seed: int
    via: Via
    requested: int
    created: int
    resumed_after: int  # users an interrupted run with the same arguments had committed
    profiles_created: int  # by receivers, for this run's users, counted in each batch
    users_without_profile: int
    seconds: float
    dry_run: bool
    stopped: StopReason | None  # "signal" when a SIGINT/SIGTERM stopped the run
    stop_signal: int | None  # that signal's number
    generated: int  # users generated (and validated, in a dry run), which a stop cuts short

    @property
    def users_per_second(self) -> float:
        return self.created / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class PurgeResult:
    runs: int
    users: int
    profiles: int
    dry_run: bool
    untracked_runs: int  # from before runs recorded their users: left alone
    runs_in_progress: int  # another process is seeding them: left alone


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
    field_values: Mapping[str, Any] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    stop: StopRequest | None = None,
) -> SeedResult:
    """Create ``count`` fake users; stop cleanly when asked to.

    Raises SeedArgumentError, before anything is written, for arguments the
    database cannot hold and for a user model field seed_users cannot fill
    (``field_values``, from ``--field``, and the SEED_USERS_FIELD_VALUES
    setting give such fields their values).

    ``stop`` is set by a signal that asked the run to stop (the command's
    SIGINT/SIGTERM handler records it). It is read before
    each batch commits: the batch in flight rolls back, never half-written, and
    no exception lands inside a driver call. A KeyboardInterrupt does the same
    for callers without a handler. The batches already committed stay and are
    counted. With an explicit ``seed``, a run with the same arguments that was
    interrupted (or killed) is resumed where it stopped, so the result is the
    one an uninterrupted run gives; a run still in progress never is.
    """
    started = time.perf_counter()
    stop = stop or StopRequest()
    resumable = seed is not None
    seed = seed if seed is not None else secrets.randbelow(2**31)
    _check_arguments(count=count, seed=seed, locales=locales, using=using)
    now = timezone.now()
    columns = user_columns(password=password_hash(password), joined=now, field_values=field_values)
    if dry_run:
        return _dry_run(
            count=count,
            via=via,
            batch_size=batch_size,
            seed=seed,
            locales=locales,
            columns=columns,
            using=using,
            started=started,
            on_batch=on_batch,
            stop=stop,
        )

    profiles_created = 0
    with ExitStack() as stack:
        run = None
        if resumable:
            run = _resumable_run(
                stack, using=using, seed=seed, via=via, count=count, locales=locales
            )
        if run is None:
            run = _reserve_run(
                stack,
                columns=columns,
                using=using,
                seed=seed,
                via=via,
                count=count,
                locales=locales,
            )
        members = SeededUser.objects.using(using).filter(run=run)
        done = members.count()
        users = FakeUsers(seed=seed, run_number=run.number, locales=locales)
        users.skip(done)
        insert = _batch_writer(via, columns=columns, run=run, using=using)
        inserted = done
        try:
            for batch in users.batches(count=count - done, batch_size=batch_size):
                profiles_created += run_batch(
                    functools.partial(_unless_stopped, functools.partial(insert, batch), stop),
                    using=using,
                    # Fake users: a batch lost to a server crash is recreated by a rerun.
                    durable=False,
                    stop=stop,
                )
                inserted += len(batch)
                if on_batch:
                    on_batch(inserted, count)
        except (_StopRequested, BatchAbandoned):
            pass  # stop.signum says which signal
        except KeyboardInterrupt:
            stop.request(signal.SIGINT)
        seconds = time.perf_counter() - started
        # Count from the database: the truth, even when a signal cut a batch short.
        in_run = members.count()
        # Still under the run's lock: nobody resumes it before it is marked finished.
        SeedRun.objects.using(using).filter(pk=run.pk).update(
            created=in_run, finished_at=timezone.now() if in_run == count else None
        )
    return SeedResult(
        run_number=run.number,
        seed=seed,
        via=via,
        requested=count,
        created=in_run - done,
        resumed_after=done,
        profiles_created=profiles_created,
        users_without_profile=users_without_profile_count(using=using),
        seconds=seconds,
        dry_run=False,
        stopped=None if stop.signum is None else "signal",
        stop_signal=stop.signum,
        generated=in_run - done,
    )


def seeded_users_purge(*, using: str, dry_run: bool = False, batch_size: int = 5000) -> PurgeResult:
    """Delete every user a seed run recorded, with their profiles, and the runs themselves.

    Only users with a SeededUser row are touched, in batches, so memory stays
    flat and locks stay short. The counts are those of the rows deleted
    (profiles a concurrent backfill adds meanwhile included). Runs from before
    runs recorded their users, and runs another process is still seeding, are
    left alone and counted.
    """
    runs = list(SeedRun.objects.using(using).order_by("number"))
    untracked = sum(not run.members_recorded for run in runs)
    user_model = get_user_model()
    user_manager = user_model._default_manager.db_manager(using)
    purged = users = profiles = in_progress = 0
    for run in runs:
        if not run.members_recorded:
            continue
        with ExitStack() as stack:
            try:
                stack.enter_context(database_lock(run_lock(run.number), using=using))
            except LockHeld:
                in_progress += 1
                continue
            members = SeededUser.objects.using(using).filter(run=run)
            purged += 1
            if dry_run:
                users += members.count()
                profiles += (
                    Profile.objects.using(using).filter(user__in=members.values("user_id")).count()
                )
                continue
            while True:
                with transaction.atomic(using=using):
                    pks = list(
                        members.order_by("user_id").values_list("user_id", flat=True)[:batch_size]
                    )
                    if not pks:
                        break
                    _, deleted = user_manager.filter(pk__in=pks).delete()
                users += deleted.get(user_model._meta.label, 0)
                profiles += deleted.get(Profile._meta.label, 0)
            SeedRun.objects.using(using).filter(pk=run.pk).delete()
    return PurgeResult(
        runs=purged,
        users=users,
        profiles=profiles,
        dry_run=dry_run,
        untracked_runs=untracked,
        runs_in_progress=in_progress,
    )


# -- helpers --


class _StopRequested(Exception):
    """Raised inside a batch's transaction, to roll it back."""


def _unless_stopped(work: Callable[[], T], stop: StopRequest) -> T:
    """Run one batch's inserts, then roll them back (by raising) if a stop was asked for."""
    result = work()
    if stop():
        raise _StopRequested
    return result


def _batch_writer(
    via: Via, *, columns: UserColumns, run: SeedRun, using: str
) -> Callable[[Sequence[FakeUser]], int]:
    """Writes one batch and records it as the run's; returns the profiles receivers made."""
    if via == "save":
        return functools.partial(save_batch, columns=columns, run_pk=run.pk, using=using)
    layout = columns.bulk_layout(connections[using])
    return functools.partial(
        bulk_insert_batch, columns=columns, layout=layout, run_pk=run.pk, using=using
    )


def _dry_run(
    *,
    count: int,
    via: Via,
    batch_size: int,
    seed: int,
    locales: Sequence[str],
    columns: UserColumns,
    using: str,
    started: float,
    on_batch: Callable[[int, int], None] | None,
    stop: StopRequest,
) -> SeedResult:
    generated = 0
    for batch in FakeUsers(seed=seed, run_number=0, locales=locales).batches(
        count=count, batch_size=batch_size
    ):
        problem = columns.too_long(batch)
        if problem:
            raise ValueError(problem)
        generated += len(batch)
        if on_batch:
            on_batch(generated, count)
        if stop():
            break
    return SeedResult(
        run_number=None,
        seed=seed,
        via=via,
        requested=count,
        created=0,
        resumed_after=0,
        profiles_created=0,
        users_without_profile=users_without_profile_count(using=using),
        seconds=time.perf_counter() - started,
        dry_run=True,
        stopped=None if stop.signum is None else "signal",
        stop_signal=stop.signum,
        generated=generated,
    )


def _check_arguments(*, count: int, seed: int, locales: Sequence[str], using: str) -> None:
    """Refuse what the database cannot hold, before anything is written."""
    ops = connections[using].ops
    meta = SeedRun._meta
    low, high = ops.integer_field_range(_field(meta.get_field("seed")).get_internal_type())
    if not low <= seed <= high:
        raise SeedArgumentError(f"--seed must be at most {high}, the largest the database stores.")
    _, most = ops.integer_field_range(_field(meta.get_field("requested")).get_internal_type())
    if count > most:
        raise SeedArgumentError(f"COUNT must be at most {most}, the largest a seed run records.")
    pk = get_user_model()._meta.pk
    if isinstance(pk, AutoFieldMixin) and pk.get_internal_type() in ops.integer_field_ranges:
        _, last_key = ops.integer_field_range(pk.get_internal_type())
        users = get_user_model()._default_manager.db_manager(using)
        room = last_key - (users.aggregate(highest=Max("pk"))["highest"] or 0)
        if count > room:
            raise SeedArgumentError(
                f"COUNT {count} is more than the user table's {pk.column} column can still "
                f"number: {room} value(s) left below its maximum, {last_key}."
            )
    joined = ",".join(locales)
    limit = _field(meta.get_field("locales")).max_length
    if limit is not None and len(joined) > limit:
        raise SeedArgumentError(
            f"--locale: {len(locales)} locale(s) take {len(joined)} characters; a seed run "
            f"records at most {limit}."
        )


def _resumable_run(
    stack: ExitStack, *, using: str, seed: int, via: Via, count: int, locales: Sequence[str]
) -> SeedRun | None:
    """An unfinished run with these arguments whose process is gone, now locked by this one.

    A run whose lock cannot be taken at once is in progress elsewhere: it is
    never resumed.
    """
    runs = SeedRun.objects.using(using)
    candidates = list(
        runs.filter(seed=seed, via=via, requested=count, locales=",".join(locales))
        .filter(finished_at__isnull=True, members_recorded=True)
        .order_by("number")
    )
    for run in candidates:
        with ExitStack() as attempt:
            try:
                attempt.enter_context(database_lock(run_lock(run.number), using=using))
            except LockHeld:
                continue
            # Its owner may have finished it between the query and the lock.
            if runs.filter(pk=run.pk, finished_at__isnull=True).exists():
                stack.enter_context(attempt.pop_all())
                return run
    return None


def _reserve_run(
    stack: ExitStack,
    *,
    columns: UserColumns,
    using: str,
    seed: int,
    via: Via,
    count: int,
    locales: Sequence[str],
) -> SeedRun:
    """Take the next free run number, and its lock; its namespace is this run's alone.

    The lock is taken before the row exists, so no other process can see the
    run unlocked and take it for an abandoned one. The unique constraint on
    ``number`` settles a race between two processes; a namespace somebody
    else's users already occupy is skipped.
    """
    runs = SeedRun.objects.using(using)
    number = (runs.aggregate(highest=Max("number"))["highest"] or 0) + 1
    while True:
        if _namespace_taken(number, columns, using):
            number += 1
            continue
        with ExitStack() as attempt:
            try:
                attempt.enter_context(database_lock(run_lock(number), using=using))
                with transaction.atomic(using=using):
                    run = runs.create(
                        number=number,
                        via=via,
                        seed=seed,
                        requested=count,
                        locales=",".join(locales),
                    )
            except (LockHeld, IntegrityError):
                number += 1
                continue
            stack.enter_context(attempt.pop_all())
            return run


def run_lock(number: int) -> str:
    """The name of the lock run ``number`` holds while its process lives."""
    return f"seed_users:run{number}"


def _namespace_taken(number: int, columns: UserColumns, using: str) -> bool:
    prefix = username_prefix(number)
    users = get_user_model()._default_manager.db_manager(using)
    taken = Q()
    for field in columns.lookup_fields:
        taken |= Q(**{f"{field.name}__startswith": prefix})
    return bool(users.filter(taken).exists())


def _field(field: Any) -> Field[Any, Any]:
    return cast("Field[Any, Any]", field)
