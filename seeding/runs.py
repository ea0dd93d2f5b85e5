"""Which seed run this process works on, held under that run's lock while it does.

Each run holds a lock of its own for its whole life (:func:`run_lock`), so a
run in progress is never resumed by another process, nor purged under its
feet; a run whose process died leaves its lock free (the server, or the
kernel for SQLite's file lock, drops it with the process), and a rerun with
the same arguments resumes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from dbtools.locks import LockHeld, database_lock
from seeding.generator import username_prefix
from seeding.models import SeededUser, SeedRun
from seeding.userfields import UserColumns


@dataclass(frozen=True)
class RunArguments:
    """What makes a rerun the same run: one with equal arguments resumes an abandoned one."""

    seed: int
    via: str
    requested: int
    locales: str  # comma-joined, as SeedRun stores them


def run_lock(number: int) -> str:
    """The name of the lock run ``number`` holds while its process lives."""
    return f"seed_users:run{number}"


def run_locked(attempt: ExitStack, number: int, *, using: str) -> bool:
    """Take run ``number``'s lock onto ``attempt``, unless another process holds it."""
    try:
        attempt.enter_context(database_lock(run_lock(number), using=using))
    except LockHeld:
        return False
    return True


@contextmanager
def run_claimed(
    arguments: RunArguments, *, resumable: bool, columns: UserColumns, using: str
) -> Iterator[SeedRun]:
    """The run this process seeds, locked until the block ends.

    With ``resumable``, an unfinished run with the same arguments whose process
    is gone; otherwise, or when there is none, a new run.
    """
    with ExitStack() as held:
        run = _abandoned_run(held, arguments, using=using) if resumable else None
        if run is None:
            run = _new_run(held, arguments, columns=columns, using=using)
        yield run


def run_members(run: SeedRun, *, using: str) -> QuerySet[SeededUser]:
    """The record of the users the run has committed: one SeededUser row each."""
    return SeededUser.objects.using(using).filter(run=run)


def run_finish(run: SeedRun, *, using: str) -> int:
    """Record how many users the run holds, finished once it holds them all; return that count.

    Called under the run's lock, so nobody resumes the run before it is marked
    finished. Counted in the database: the truth even when a stop cut a batch short.
    """
    created = run_members(run, using=using).count()
    finished_at = timezone.now() if created == run.requested else None
    SeedRun.objects.using(using).filter(pk=run.pk).update(created=created, finished_at=finished_at)
    return created


def _abandoned_run(held: ExitStack, arguments: RunArguments, *, using: str) -> SeedRun | None:
    """An unfinished run with these arguments whose lock is free, now locked onto ``held``.

    A run whose lock cannot be taken at once is in progress elsewhere: it is
    never resumed.
    """
    runs = SeedRun.objects.using(using)
    candidates = runs.filter(**asdict(arguments), finished_at__isnull=True, members_recorded=True)
    for run in candidates.order_by("number"):
        with ExitStack() as attempt:
            # Its owner may have finished it between the query and the lock.
            if run_locked(attempt, run.number, using=using) and (
                runs.filter(pk=run.pk, finished_at__isnull=True).exists()
            ):
                held.enter_context(attempt.pop_all())
                return run
    return None


def _new_run(
    held: ExitStack, arguments: RunArguments, *, columns: UserColumns, using: str
) -> SeedRun:
    """The next free run number, its lock on ``held``: its namespace is this run's alone.

    The lock is taken before the row exists, so no other process can see the
    run unlocked and take it for an abandoned one. The unique constraint on
    ``number`` settles a race between two processes; a namespace somebody
    else's users already occupy is skipped.
    """
    runs = SeedRun.objects.using(using)
    number = runs.aggregate(highest=Max("number"))["highest"] or 0
    while True:
        number += 1
        if _namespace_taken(number, columns, using=using):
            continue
        with ExitStack() as attempt:
            if not run_locked(attempt, number, using=using):
                continue
            try:
                with transaction.atomic(using=using):
                    run = runs.create(number=number, **asdict(arguments))
            except IntegrityError:  # another process took this number first
                continue
            held.enter_context(attempt.pop_all())
            return run


def _namespace_taken(number: int, columns: UserColumns, *, using: str) -> bool:
    """Whether a user already holds a value of run ``number``'s namespace in a unique field.

    Only a unique field can make the run's inserts fail; the others may share
    the namespace. Each test is a range its unique index serves, so the check
    costs a probe whatever the table's size: every value starting with
    "seedN-" lies in ["seedN-", "seedM") where M is N with its last digit
    raised ("9" to "a"), in byte order and in the linguistic collations
    (which ignore the "-" at first and sort digits before letters) alike.
    The range is wider than the namespace (it holds "seedN0-..." too), so the
    prefix is tested within it.
    """
    prefix = username_prefix(number)
    digits = str(number)
    upper = f"seed{digits[:-1]}{'a' if digits[-1] == '9' else chr(ord(digits[-1]) + 1)}"
    users = get_user_model()._default_manager.db_manager(using)
    taken = Q()
    for field in columns.lookup_fields:
        if field.unique:
            name = field.name
            taken |= Q(
                **{f"{name}__gte": prefix, f"{name}__lt": upper, f"{name}__istartswith": prefix}
            )
    return bool(taken) and users.filter(taken).exists()
