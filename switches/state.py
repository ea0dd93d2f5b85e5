"""What is switched off right now, as this process sees it.

Two sources, both checked by every switchable receiver on every call:

- the receivers muted in the current context (:func:`switches.muting.muted`):
  a contextvar, so one thread or asyncio task never sees another's;
- the switches stored in the database, shared by every process. They are read
  at the first signal a process sends, then again at most every
  ``RECEIVER_SWITCHES_REFRESH_SECONDS`` (and when a switch's expiry passes),
  never once per signal: between reads the names come from a snapshot here.

Which database holds the state for a signal: the one the signal is about (the
``using`` argument of the model signals) when the switch table lives there,
else the one the database routers pick for reading it ("default" without
routers), which is also where signals without a database (``pre_init``,
``post_init``, request and auth signals) look.
"""

from __future__ import annotations

import functools
import logging
import time
from contextvars import ContextVar
from datetime import datetime
from typing import NamedTuple

from django.conf import settings
from django.db import DatabaseError, connections, router, transaction
from django.utils import timezone

from dbtools.errors import first_line

logger = logging.getLogger(__name__)

DEFAULT_REFRESH_SECONDS = 5.0

muted_names: ContextVar[frozenset[str]] = ContextVar("receiver_switches_muted", default=frozenset())


class _Snapshot(NamedTuple):
    fresh_until: float  # time.monotonic()
    off: frozenset[str]


# One snapshot per value of the signal's ``using`` (None for signals without one).
_snapshots: dict[str | None, _Snapshot] = {}
_monotonic = time.monotonic
# Databases where this process changed switches in a transaction not over yet.
_uncommitted: set[str] = set()


def cached_off(using: str | None) -> frozenset[str] | None:
    """The switched-off names for ``using`` if the snapshot is fresh, else None."""
    snapshot = _snapshots.get(using)
    if snapshot is not None and snapshot.fresh_until > _monotonic():
        return snapshot.off
    return None


def switched_off(using: str | None) -> frozenset[str]:
    """The names switched off in the database for a signal about ``using``; cached."""
    snapshot = _snapshots.get(using)
    if snapshot is not None and snapshot.fresh_until > _monotonic():
        return snapshot.off
    return _refresh(using)


def forget() -> None:
    """Drop every snapshot: the next signal reads the database again."""
    _snapshots.clear()


def reset() -> None:
    """Back to the state of a process that has sent no signal: no snapshot, and no
    change of its own waiting for a transaction to end (a test's rolled-back
    transaction never runs the on-commit hook that would clear that mark)."""
    _snapshots.clear()
    _uncommitted.clear()


def written(*, using: str) -> None:
    """Called after this process changed the switches in ``using``.

    The change is seen at once here. When it is part of a transaction still
    open, reads on that database are not cached until the transaction is over:
    were it rolled back (as at the end of every test), a snapshot would keep
    the rolled-back state for a whole refresh period.
    """
    _snapshots.clear()
    if connections[using].in_atomic_block:
        _uncommitted.add(using)
        transaction.on_commit(functools.partial(_committed, using), using=using)


def _committed(using: str) -> None:
    _uncommitted.discard(using)
    _snapshots.clear()  # also for this process's other threads


def refresh_seconds() -> float:
    return float(getattr(settings, "RECEIVER_SWITCHES_REFRESH_SECONDS", DEFAULT_REFRESH_SECONDS))


def storage_alias(using: str | None) -> str:
    """The database holding the switches that apply to a signal about ``using``."""
    from switches.models import ReceiverSwitch

    if using is not None and router.allow_migrate_model(using, ReceiverSwitch):
        return using
    return router.db_for_read(ReceiverSwitch)


def _refresh(using: str | None) -> frozenset[str]:
    started = _monotonic()
    alias = storage_alias(using)
    now = timezone.now()
    fresh_for = refresh_seconds()
    try:
        rows = _read(alias, now)
    except DatabaseError as exc:
        # No table yet (a database being migrated) or no database: nothing can be
        # stored there, so every receiver is on. The signal's own query fails too
        # if the database is really gone.
        logger.warning(
            "cannot read receiver switches from database %r (%s); treating every "
            "receiver as on for %ss.",
            alias,
            first_line(exc),
            fresh_for,
        )
        rows = []
    if alias in _uncommitted:
        if connections[alias].in_atomic_block:
            fresh_for = 0.0
        else:  # committed or rolled back: the database has the truth again
            _uncommitted.discard(alias)
    # Read again when the first switch expires, so '--for 2h' ends on time.
    for _, expires_at in rows:
        if expires_at is not None:
            fresh_for = min(fresh_for, max((expires_at - now).total_seconds(), 0.0))
    off = frozenset(name for name, _ in rows)
    _snapshots[using] = _Snapshot(started + fresh_for, off)
    return off


def _read(alias: str, now: datetime) -> list[tuple[str, datetime | None]]:
    from switches.models import ReceiverSwitch

    rows = ReceiverSwitch.objects.using(alias).active(now).values_list("name", "expires_at")
    if connections[alias].in_atomic_block:
        # A savepoint, so that a failed read (no table yet) cannot break the
        # transaction the signal is sent from on PostgreSQL.
        with transaction.atomic(using=alias):
            return list(rows)
    return list(rows)
