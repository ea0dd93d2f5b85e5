"""Writes: seed fake users.

``--via bulk`` inserts each batch with the driver's bulk path (``COPY`` on
PostgreSQL, ``executemany`` elsewhere) inside one transaction: no ``save()``,
so no signal fires, exactly like ``bulk_create``, but without the per-object
preparation that caps ``bulk_create`` near 20k rows/s. ``--via save`` calls
``save()`` on each user, so every receiver runs.

Welcome mails: through ``save()`` the receiver writes each user's record
(pending, or suppressed while it is muted or switched off) and delivery
follows each batch's commit. A bulk insert writes none (``welcome_mails sync``
makes them later), unless the welcome receiver is muted for the run
(``mute``, ``seed_users --mute``): then the batch writes its users' records
suppressed, set-based, as the muted receiver would have.

Every user a run creates is recorded as a ``SeededUser`` row in the same
transaction, so purging (:mod:`seeding.purge`) deletes exactly those users.
Which run a process works on, and the lock that keeps it its own, is
:mod:`seeding.runs`.
"""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import connections
from django.db.models import Count, Field, Max
from django.db.models.fields import AutoFieldMixin
from django.utils import timezone

from dbtools.stopping import StopReason, StopRequest
from profiles.models import WelcomeMail
from profiles.selectors import users_without_profile_count, users_without_welcome_mail
from profiles.welcome.message import mail_destination
from seeding.errors import SeedArgumentError
from seeding.generator import FakeUsers
from seeding.models import SeedRun
from seeding.runs import RunArguments, run_claimed, run_finish, run_members
from seeding.userfields import UserColumns, user_columns
from seeding.writer import BatchWriter, Via
from switches.muting import muted

# The most users one run seeds unless its caller (seed_users --max-count) raises it: about
# two minutes through the bulk path and hours through save(), and some gigabytes of rows.
# A COUNT with a few zeros too many is refused at once instead of found out hours later.
MAX_COUNT = 10_000_000


@dataclass(frozen=True)
class SeedResult:
    run_number: int | None
    seed: int
    via: Via
    requested: int
    created: int
    resumed_after: int  # users an interrupted run with the same arguments had committed
    profiles_created: int  # by receivers, for this run's users, counted in each batch
    # Users of the whole table without a profile, after the run; None unless asked for
    # (count_table): an anti-join over every user, which no index makes cheap.
    users_without_profile: int | None
    # Welcome-mail records this run's batches created (by the receiver, or
    # suppressed set-based for a muted bulk run), counted in each batch.
    welcome_records_pending: int
    welcome_records_suppressed: int
    users_without_welcome_mail: int | None  # in the whole table, as users_without_profile
    seconds: float
    dry_run: bool
    stopped: StopReason | None  # "signal" when a SIGINT/SIGTERM stopped the run
    stop_signal: int | None  # that signal's number
    streams: int | None  # connections the run wrote on (None for a dry run)
    generated: int  # users generated (and validated, in a dry run), which a stop cuts short
    # --via save: the run's welcome mails as they stand after it (delivery follows
    # each batch's commit), and where mail goes; None for a bulk or dry run.
    welcome_mails_sent: int | None = None
    welcome_mails_pending: int | None = None  # pending or leased to a sender: not sent yet
    welcome_mails_failed: int | None = None
    mail_destination: str | None = None

    @property
    def run_users_without_profile(self) -> int:
        """The users this process created that their batches gave no profile."""
        return self.created - self.profiles_created

    @property
    def run_users_without_welcome_mail(self) -> int:
        """The users this process created that their batches gave no welcome-mail record."""
        return self.created - self.welcome_records_pending - self.welcome_records_suppressed

    @property
    def users_per_second(self) -> float:
        return self.created / self.seconds if self.seconds > 0 else 0.0


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
    mute: Sequence[str] = (),
    max_count: int = MAX_COUNT,
    count_table: bool = False,
    streams: int | None = None,
) -> SeedResult:
    """Create ``count`` fake users; stop cleanly when asked to.

    What a run costs grows with the users it writes, not with the users the
    table already holds: its figures come from its own batches, and the
    whole table's users without a profile or a welcome-mail record are
    counted only with ``count_table`` (``seed_users -v 2``).

    ``streams``: connections a bulk run writes on at once, its batches still
    committed in order (:mod:`seeding.streams`); None is two on PostgreSQL and
    one elsewhere, and any number is one where more cannot work (SQLite, MySQL,
    ``--via save``, inside a transaction of the caller's).

    ``mute``: receivers muted while the run writes (``seed_users --mute``), with
    the reason "seed_users --mute (seed run N)"; a muted welcome receiver gives
    the run's users suppressed welcome-mail records, also for a bulk insert.

    Raises SeedArgumentError, before anything is written, for a ``count``
    above ``max_count``, for arguments the database cannot hold (a count
    beyond the keys an integer primary key has left, say) and for a user
    model field seed_users cannot fill
    (``field_values``, from ``--field``, and the SEED_USERS_FIELD_VALUES
    setting give such fields their values).

    ``stop`` is set by a signal that asked the run to stop (the command's
    SIGINT/SIGTERM handler records it). It is read once per batch, with the
    batch's rows inserted and before it commits: the batch in flight rolls
    back, never half-written, and no exception lands inside a driver call. A
    KeyboardInterrupt does the same for callers without a handler. The batches
    already committed stay and are counted. With an explicit ``seed``, a run
    with the same arguments that was interrupted (or killed) is resumed where
    it stopped, so the result is the one an uninterrupted run gives; a run
    still in progress never is.
    """
    started = time.perf_counter()
    stop = stop or StopRequest()
    resumable = seed is not None
    seed = seed if seed is not None else secrets.randbelow(2**31)
    _check_arguments(count=count, max_count=max_count, seed=seed, locales=locales, using=using)
    columns = user_columns(
        password=password_hash(password), joined=timezone.now(), field_values=field_values
    )
    if dry_run:
        users = FakeUsers(seed=seed, run_number=0, locales=locales)
        without_profile, without_welcome_mail = _table_counts(using, count_table)
        generated = _validated(
            users, columns, count=count, batch_size=batch_size, on_batch=on_batch, stop=stop
        )
        return SeedResult(
            run_number=None,
            seed=seed,
            via=via,
            requested=count,
            created=0,
            resumed_after=0,
            profiles_created=0,
            welcome_records_pending=0,
            welcome_records_suppressed=0,
            users_without_profile=without_profile,
            users_without_welcome_mail=without_welcome_mail,
            seconds=time.perf_counter() - started,
            dry_run=True,
            stopped=_stopped(stop),
            stop_signal=stop.signum,
            streams=None,
            generated=generated,
        )

    arguments = RunArguments(seed=seed, via=via, requested=count, locales=",".join(locales))
    with run_claimed(arguments, resumable=resumable, columns=columns, using=using) as run:
        resumed_after = run_members(run, using=using).count()
        users = FakeUsers(seed=seed, run_number=run.number, locales=locales)
        users.skip(resumed_after)
        reason = f"seed_users --mute (seed run {run.number})"
        with muted(*mute, reason=reason) if mute else nullcontext():
            writer = BatchWriter(
                run, via=via, columns=columns, using=using, stop=stop, streams=streams
            )
            counts = writer.write_all(
                users.batches(count=count - resumed_after, batch_size=batch_size),
                done=resumed_after,
                on_batch=on_batch,
            )
        seconds = time.perf_counter() - started
        created = run_finish(run, using=using) - resumed_after
        states = _welcome_states(run, using=using) if via == "save" else None
        without_profile, without_welcome_mail = _table_counts(using, count_table)
    return SeedResult(
        run_number=run.number,
        seed=seed,
        via=via,
        requested=count,
        created=created,
        resumed_after=resumed_after,
        profiles_created=counts.profiles,
        welcome_records_pending=counts.welcome_pending,
        welcome_records_suppressed=counts.welcome_suppressed,
        users_without_profile=without_profile,
        users_without_welcome_mail=without_welcome_mail,
        seconds=seconds,
        dry_run=False,
        stopped=_stopped(stop),
        stop_signal=stop.signum,
        streams=writer.streams,
        generated=created,
        **(states or {}),
    )


def _table_counts(using: str, count_table: bool) -> tuple[int | None, int | None]:
    """The whole table's users without a profile and without a welcome-mail record,
    or None for both unless ``count_table``."""
    if not count_table:
        return None, None
    return (
        users_without_profile_count(using=using),
        users_without_welcome_mail(using=using).in_table,
    )


def _welcome_states(run: SeedRun, *, using: str) -> dict[str, Any]:
    """The run's welcome mails after it, by state, and where mail goes (``--via save``).

    Read after the last batch: delivery follows each batch's commit (at once
    with the ImmediateBackend; a task worker or ``welcome_mails send`` later).
    """
    members = run_members(run, using=using).values("user_id")
    rows = (
        WelcomeMail.objects.using(using)
        .filter(user_id__in=members)
        .order_by()
        .values("status")
        .annotate(count=Count("pk"))
        .values_list("status", "count")
    )
    states = dict(rows)
    status = WelcomeMail.Status
    return {
        "welcome_mails_sent": states.get(status.SENT, 0),
        "welcome_mails_pending": states.get(status.PENDING, 0) + states.get(status.SENDING, 0),
        "welcome_mails_failed": states.get(status.FAILED, 0),
        "mail_destination": mail_destination(),
    }


def _validated(
    users: FakeUsers,
    columns: UserColumns,
    *,
    count: int,
    batch_size: int,
    on_batch: Callable[[int, int], None] | None,
    stop: StopRequest,
) -> int:
    """Generate and check what a run would write, writing nothing; how many, until a stop."""
    generated = 0
    try:
        for batch in users.batches(count=count, batch_size=batch_size):
            problem = columns.too_long(batch)
            if problem:
                raise ValueError(problem)
            generated += len(batch)
            if on_batch:
                on_batch(generated, count)
            if stop():
                break
    except KeyboardInterrupt:  # a caller without a signal handler: as a real run does
        stop.request(signal.SIGINT)
    return generated


def _stopped(stop: StopRequest) -> StopReason | None:
    return None if stop.signum is None else "signal"


def _check_arguments(
    *, count: int, max_count: int, seed: int, locales: Sequence[str], using: str
) -> None:
    """Refuse a count above the bound and what the database cannot hold, before anything
    is written."""
    if count > max_count:
        raise SeedArgumentError(
            f"COUNT {count} is more than {max_count}, the most one run seeds unless "
            f"--max-count says otherwise; pass --max-count {count} if you mean it."
        )
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


def _field(field: Any) -> Field[Any, Any]:
    return cast("Field[Any, Any]", field)
