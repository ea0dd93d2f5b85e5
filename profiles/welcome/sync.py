"""The set-based reconcile of welcome-mail records, and the explicit suppression of a range.

``welcome_mails sync`` (:func:`welcome_mails_sync`) gives every user without a
record one, in the profile backfill's batches (:mod:`profiles.backfill`: the
same walk over the pks, threads, limits, stops and lock; another
:class:`~profiles.backfill.Target`): pending for users who joined at or after
the rollout cutoff, suppressed (saying why) for those before it, so deploying
this never mails the historic users. It creates records only: no signal is
sent and no mail; ``welcome_mails send`` (or a task worker) delivers.

``welcome_mails suppress`` (:func:`welcome_mails_suppress`) suppresses every
user who joined in a range, with the operator's reason: a record for those
without one, and the pending or failed records turned suppressed; a record
sent, or leased to a sender, is left alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import connections
from django.db.models import Count, Q
from django.db.models.functions import Mod
from django.utils import timezone

from dbtools.batches import run_batch
from dbtools.errors import UsageError
from dbtools.stopping import StopRequest
from profiles import sql
from profiles.backfill import RERUN, BackfillResult, Insert, Target, records_backfill, run_lock
from profiles.models import WelcomeMail
from profiles.selectors import MissingRecords, users_without_welcome_mail
from profiles.sharding import WHOLE_TABLE, Shard
from profiles.welcome.joined import cutoff_reason, joined_field_name, rollout_cutoff
from profiles.welcome.records import pending_values, suppressed_values

LOCK_NAME = "welcome_mails_sync"


def _suppressible(now: datetime, prefix: str = "") -> Q:
    """Records no sender is sending, which suppress turns suppressed: pending, failed,
    and leases that ran out (a killed sender's, which the next sender would take).
    What it leaves alone is sent, or leased to a sender that may be sending it now."""
    status, due_at = f"{prefix}status", f"{prefix}due_at"
    return Q(**{f"{status}__in": (WelcomeMail.Status.PENDING, WelcomeMail.Status.FAILED)}) | Q(
        **{status: WelcomeMail.Status.SENDING, f"{due_at}__lte": now}
    )


def _left_alone(now: datetime, prefix: str = "") -> Q:
    status, due_at = f"{prefix}status", f"{prefix}due_at"
    return Q(**{status: WelcomeMail.Status.SENT}) | Q(
        **{status: WelcomeMail.Status.SENDING, f"{due_at}__gt": now}
    )


@dataclass(frozen=True)
class SyncResult(BackfillResult):
    """A backfill of welcome-mail records: ``created`` is ``pending + suppressed``."""

    pending: int = 0
    suppressed: int = 0  # users who joined before ``cutoff`` (or never said when)
    cutoff: datetime | None = None

    @property
    def records_per_second(self) -> float:
        return self.rows_per_second


def sync_target(cutoff: datetime | None) -> Target:
    """What a sync inserts: pending records, or with a cutoff pending ones for the users
    who joined at or after it and suppressed ones for the others (two statements a
    batch, in its transaction). Without a cutoff, the joined field is never read."""
    if cutoff is None:
        inserts: tuple[Insert, ...] = (Insert(pending_values),)
    else:
        joined = joined_field_name()  # ConfigurationError when the model has no such field
        inserts = (
            Insert(pending_values, sql.Joined.at_or_after(joined, cutoff)),
            Insert(
                functools.partial(suppressed_values, cutoff_reason(cutoff)),
                sql.Joined.before(joined, cutoff),
            ),
        )
    return Target(model=WelcomeMail, inserts=inserts, missing=users_without_welcome_mail)


def sync_cutoff(joined_since: datetime | None) -> datetime | None:
    """The cutoff of a run: ``joined_since`` if given, else ``WELCOME_MAIL_SINCE``."""
    return joined_since if joined_since is not None else rollout_cutoff()


def welcome_mails_sync(
    *,
    using: str,
    batch_size: int,
    shard: Shard = WHOLE_TABLE,
    limit: int | None = None,
    max_seconds: float | None = None,
    stop: StopRequest | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    jobs: int = 1,
    joined_since: datetime | None = None,
) -> SyncResult:
    """Create the welcome-mail record of every user that has none, in batches.

    The batches, threads, ``limit`` (records of either kind), ``max_seconds``,
    ``stop`` and ``on_batch`` are :func:`profiles.backfill.profiles_backfill`'s.
    The cutoff is ``joined_since``, else ``WELCOME_MAIL_SINCE``: users who joined
    before it (or whose joined field is NULL) get a suppressed record saying so.
    Records made meanwhile by the receiver are neither duplicated nor counted.
    No signal is sent and no mail: ``welcome_mails send`` delivers.
    """
    cutoff = sync_cutoff(joined_since)
    result = records_backfill(
        sync_target(cutoff),
        using=using,
        batch_size=batch_size,
        shard=shard,
        limit=limit,
        max_seconds=max_seconds,
        stop=stop,
        on_batch=on_batch,
        jobs=jobs,
    )
    pending, suppressed = (*result.created_by_insert, 0)[:2]
    return SyncResult(
        **{field.name: getattr(result, field.name) for field in fields(BackfillResult)},
        pending=pending,
        suppressed=suppressed,
        cutoff=cutoff,
    )


@dataclass(frozen=True)
class SyncPreview:
    """What a sync would create (``--dry-run``, ``--check``): the users without a record,
    and how many of those in the shard joined before the cutoff."""

    missing: MissingRecords
    suppressed: int
    cutoff: datetime | None

    @property
    def pending(self) -> int:
        return self.missing.in_shard - self.suppressed


def sync_preview(
    *, using: str, shard: Shard = WHOLE_TABLE, joined_since: datetime | None = None
) -> SyncPreview:
    """One read: the users without a record (in the shard, in the table) and, with a
    cutoff, those of the shard who joined before it."""
    cutoff = sync_cutoff(joined_since)
    missing = users_without_welcome_mail(using=using, shard=shard)
    suppressed = 0
    if cutoff is not None and missing.in_shard:
        joined = joined_field_name()
        users = get_user_model()._base_manager.db_manager(using)
        before = users.filter(
            Q(**{f"{joined}__lt": cutoff}) | Q(**{f"{joined}__isnull": True}),
            welcome_mail__isnull=True,
        )
        if shard.count > 1:
            before = before.alias(residue=Mod("pk", shard.count)).filter(residue=shard.number - 1)
        suppressed = before.count()
    return SyncPreview(missing=missing, suppressed=suppressed, cutoff=cutoff)


def sync_lock(
    *, using: str, shard: Shard = WHOLE_TABLE, wait: float = 0, enabled: bool = True
) -> AbstractContextManager[None]:
    """The run lock of ``welcome_mails sync`` (``welcome_mails_sync``, or
    ``welcome_mails_sync:K/N`` for a shard); see :func:`profiles.backfill.run_lock`."""
    return run_lock(LOCK_NAME, using=using, shard=shard, wait=wait, enabled=enabled)


@dataclass(frozen=True)
class SuppressResult:
    """A suppression of the users who joined in ``[joined_from, joined_to)``."""

    joined_from: datetime
    joined_to: datetime
    reason: str
    created: int  # suppressed records for users of the range that had none
    suppressed: int  # pending or failed records of the range, turned suppressed
    left_alone: int  # sent, or leased to a sender (sending): untouched
    already_suppressed: int  # suppressed before, their reason kept
    dry_run: bool = False


def welcome_mails_suppress(
    *,
    using: str,
    joined_from: datetime,
    joined_to: datetime,
    reason: str,
    dry_run: bool = False,
) -> SuppressResult:
    """Suppress the welcome mail of every user who joined in ``[joined_from, joined_to)``.

    Users without a record get a suppressed one (the insert-if-missing
    statement of :mod:`profiles.sql`, over the whole pk range at once); pending
    and failed records, and leases that ran out, become suppressed with
    ``reason`` (one UPDATE). Both in
    one transaction: all of the range or none of it, and the counts are exact.
    A record sent, or leased to a sender now sending it, is left alone; on
    PostgreSQL and MariaDB a sender's claim skips the rows the UPDATE has
    locked, so none of them goes out meanwhile. ``dry_run``: count only.
    """
    reason = reason.strip()
    if not reason:
        raise UsageError("give a --reason: it is kept with each suppressed record.")
    if not joined_from < joined_to:
        raise UsageError(
            f"the range is empty: {joined_from.isoformat()} is not before {joined_to.isoformat()}."
        )
    joined = joined_field_name()
    if dry_run:
        counts = _range_counts(using, joined, joined_from, joined_to, timezone.now())
        return SuppressResult(
            joined_from=joined_from,
            joined_to=joined_to,
            reason=reason,
            created=counts["without"],
            suppressed=counts["suppressible"],
            left_alone=counts["left_alone"],
            already_suppressed=counts["suppressed"],
            dry_run=True,
        )
    suppress = _Suppress(using, joined, joined_from, joined_to, reason)
    created, suppressed, counts = run_batch(suppress, using=using)
    return SuppressResult(
        joined_from=joined_from,
        joined_to=joined_to,
        reason=reason,
        created=created,
        suppressed=suppressed,
        left_alone=counts["left_alone"],
        already_suppressed=counts["suppressed"] - created - suppressed,
    )


@dataclass(frozen=True)
class _Suppress:
    """The writes of a suppression, in the shape run_batch runs (one transaction)."""

    using: str
    joined: str
    joined_from: datetime
    joined_to: datetime
    reason: str

    def __call__(self) -> tuple[int, int, dict[str, int]]:
        users = get_user_model()._base_manager.db_manager(self.using)
        high = users.order_by("-pk").values_list("pk", flat=True).first()
        created = 0
        if high is not None:
            created = sql.insert_missing(
                connections[self.using],
                values=suppressed_values(self.reason),
                last_pk=high,
                strategy=RERUN,
                model=WelcomeMail,
                joined=sql.Joined.between(self.joined, self.joined_from, self.joined_to),
            )
        in_range = users.filter(**_between(self.joined, self.joined_from, self.joined_to))
        now = timezone.now()
        suppressed = (
            WelcomeMail.objects.using(self.using)
            .filter(_suppressible(now), user__in=in_range.values("pk"))
            .update(status=WelcomeMail.Status.SUPPRESSED, reason=self.reason)
        )
        counts = _range_counts(self.using, self.joined, self.joined_from, self.joined_to, now)
        return created, suppressed, counts


def _range_counts(
    using: str, joined: str, joined_from: datetime, joined_to: datetime, now: datetime
) -> dict[str, int]:
    """The users of the range: without a record, and with one by what suppress does to it."""
    users = get_user_model()._base_manager.db_manager(using)
    return users.filter(**_between(joined, joined_from, joined_to)).aggregate(
        without=Count("pk", filter=Q(welcome_mail__isnull=True)),
        suppressible=Count("pk", filter=_suppressible(now, "welcome_mail__")),
        left_alone=Count("pk", filter=_left_alone(now, "welcome_mail__")),
        suppressed=Count("pk", filter=Q(welcome_mail__status=WelcomeMail.Status.SUPPRESSED)),
    )


def _between(joined: str, joined_from: datetime, joined_to: datetime) -> dict[str, datetime]:
    return {f"{joined}__gte": joined_from, f"{joined}__lt": joined_to}
