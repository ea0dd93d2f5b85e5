"""Writes: delete the users seed runs created, with their profiles and welcome-mail records,
and the runs themselves.

Every user a run creates is recorded as a ``SeededUser`` row in the same
transaction, and purging deletes exactly those users: never a user whose name
merely looks seeded.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from profiles.models import Profile, WelcomeMail
from seeding.models import SeedRun
from seeding.runs import run_locked, run_members


@dataclass(frozen=True)
class PurgeResult:
    runs: int
    users: int
    profiles: int
    welcome_mails: int  # welcome-mail records
    dry_run: bool
    untracked_runs: int  # from before runs recorded their users: left alone
    runs_in_progress: int  # another process is seeding them: left alone


def seeded_users_purge(*, using: str, dry_run: bool = False, batch_size: int = 5000) -> PurgeResult:
    """Delete every user a seed run recorded, with their profiles and welcome-mail
    records, and the runs themselves.

    Only users with a SeededUser row are touched, in batches, so memory stays
    flat and locks stay short. The counts are those of the rows deleted
    (profiles a concurrent backfill adds meanwhile included). Runs from before
    runs recorded their users, and runs another process is still seeding (their
    lock is held), are left alone and counted.
    """
    runs = list(SeedRun.objects.using(using).order_by("number"))
    tracked = [run for run in runs if run.members_recorded]
    purged = in_progress = 0
    deleted = _Deleted()
    for run in tracked:
        with ExitStack() as held:
            if not run_locked(held, run.number, using=using):
                in_progress += 1
                continue
            if dry_run:
                of_run = _counted(run, using=using)
            else:
                of_run = _deleted(run, using=using, batch_size=batch_size)
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
    )


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


def _deleted(run: SeedRun, *, using: str, batch_size: int) -> _Deleted:
    """Delete the run's users a batch per transaction, then the run; what was deleted.

    Their profiles, welcome-mail records and SeededUser rows go with them
    (on_delete=CASCADE), counted from what the delete reports.
    """
    user_model = get_user_model()
    user_manager = user_model._default_manager.db_manager(using)
    members = run_members(run, using=using).order_by("user_id").values_list("user_id", flat=True)
    total = _Deleted()
    while True:
        with transaction.atomic(using=using):
            pks = list(members[:batch_size])
            if not pks:
                break
            _, deleted = user_manager.filter(pk__in=pks).delete()
        total += _Deleted(
            users=deleted.get(user_model._meta.label, 0),
            profiles=deleted.get(Profile._meta.label, 0),
            welcome_mails=deleted.get(WelcomeMail._meta.label, 0),
        )
    SeedRun.objects.using(using).filter(pk=run.pk).delete()
    return total
