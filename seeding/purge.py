"""Writes: delete the users seed runs created, with their profiles and welcome-mail records,
and the runs themselves.

Every user a run creates is recorded as a ``SeededUser`` row in the same
transaction, and purging deletes exactly those users: never a user whose name
merely looks seeded.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from dbtools.cascade import CascadePlan, cascade_delete, cascade_plan
from profiles.models import Profile, WelcomeMail
from seeding.models import SeededUser, SeedRun
from seeding.runs import run_locked, run_members

# Users per batch (one transaction). Each statement binds the batch's keys once, so
# fewer, larger batches cost less: on PostgreSQL 20,000 purged about 15% faster than
# 5,000 (SQLite: no difference), and a batch still commits within about a second.
BATCH_SIZE = 20_000


@dataclass(frozen=True)
class PurgeResult:
    runs: int
    users: int
    profiles: int
    welcome_mails: int  # welcome-mail records
    dry_run: bool
    untracked_runs: int  # from before runs recorded their users: left alone
    runs_in_progress: int  # another process is seeding them: left alone
    # Why some rows are loaded and deleted object by object (a delete receiver, say),
    # one reason per model; () when every table is deleted set-based.
    object_by_object: tuple[str, ...] = ()


def seeded_users_purge(
    *,
    using: str,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[int, int], None] | None = None,
) -> PurgeResult:
    """Delete every user a seed run recorded, with their profiles and welcome-mail
    records (and whatever else cascades from a user), and the runs themselves.

    Only users with a SeededUser row are touched, in batches of ``batch_size``
    users, each one transaction, so memory stays flat and locks stay short.
    Each table is deleted with one statement per batch, unless Django's own
    delete would need its rows as objects (:mod:`dbtools.cascade`: a
    pre_delete/post_delete receiver, say): those rows go through Django's
    delete, which sends their signals; ``object_by_object`` says which and why.
    The counts are those of the rows deleted (profiles a concurrent backfill
    adds meanwhile included). Runs from before runs recorded their users, and
    runs another process is still seeding (their lock is held), are left alone
    and counted. ``on_batch(done, total)`` follows each batch, ``total`` being
    the users still to purge as far as known (it shrinks by the users of a run
    left alone).
    """
    runs = list(SeedRun.objects.using(using).order_by("number"))
    tracked = [run for run in runs if run.members_recorded]
    plan = cascade_plan(get_user_model())
    progress = _Progress(
        SeededUser.objects.using(using).filter(run__in=[run.pk for run in tracked]).count(),
        on_batch,
    )
    purged = in_progress = 0
    deleted = _Deleted()
    for run in tracked:
        with ExitStack() as held:
            if not run_locked(held, run.number, using=using):
                in_progress += 1
                progress.leave_alone(run_members(run, using=using).count())
                continue
            if dry_run:
                of_run = _counted(run, using=using)
            else:
                of_run = _deleted(
                    run, plan=plan, using=using, batch_size=batch_size, progress=progress
                )
        purged += 1
        deleted += of_run
    return PurgeResult(
        runs=purged,
        users=deleted.users,
        profiles=deleted.profiles,
        welcome_mails=deleted.welcome_mails,
        dry_run=dry_run,
        untracked_runs=len(runs) - len(tracked),
        runs_in_progress=in_progress,
        object_by_object=plan.object_by_object,
    )


class _Progress:
    """Users purged so far, of the users still to purge as far as known."""

    def __init__(self, total: int, on_batch: Callable[[int, int], None] | None) -> None:
        self.total, self.done, self._on_batch = total, 0, on_batch

    def advance(self, users: int) -> None:
        self.done += users
        self._report()

    def leave_alone(self, users: int) -> None:
        """A run another process is seeding: its users are not to purge after all."""
        self.total -= users
        self._report()

    def _report(self) -> None:
        if self._on_batch:
            self._on_batch(self.done, max(self.total, self.done))


@dataclass(frozen=True)
class _Deleted:
    users: int = 0
    profiles: int = 0
    welcome_mails: int = 0

    def __add__(self, other: _Deleted) -> _Deleted:
        return _Deleted(
            self.users + other.users,
            self.profiles + other.profiles,
            self.welcome_mails + other.welcome_mails,
        )


def _counted(run: SeedRun, *, using: str) -> _Deleted:
    """The users, profiles and welcome-mail records purging the run would delete now."""
    members = run_members(run, using=using)
    of_members = {"user__in": members.values("user_id")}
    return _Deleted(
        users=members.count(),
        profiles=Profile.objects.using(using).filter(**of_members).count(),
        welcome_mails=WelcomeMail.objects.using(using).filter(**of_members).count(),
    )


def _deleted(
    run: SeedRun,
    *,
    plan: CascadePlan,
    using: str,
    batch_size: int,
    progress: _Progress,
) -> _Deleted:
    """Delete the run's users a batch per transaction, then the run; what was deleted.

    Their profiles, welcome-mail records, SeededUser rows and everything else
    that cascades go with them, counted from what each statement reports.
    """
    user_label = plan.root._meta.label
    members = run_members(run, using=using).order_by("user_id").values_list("user_id", flat=True)
    total = _Deleted()
    while True:
        with transaction.atomic(using=using):
            pks = list(members[:batch_size])
            if not pks:
                break
            deleted = cascade_delete(plan, pks, using=using)
        total += _Deleted(
            users=deleted[user_label],
            profiles=deleted[Profile._meta.label],
            welcome_mails=deleted[WelcomeMail._meta.label],
        )
        progress.advance(len(pks))
    SeedRun.objects.using(using).filter(pk=run.pk).delete()
    return total
