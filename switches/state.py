"""What is switched off right now, as this process sees it.

Two sources, both checked by every switchable receiver on every call:

- the receivers muted in the current context (:func:`switches.muting.muted`):
  a contextvar, so one thread or asyncio task never sees another's;
- the switches stored in the database, shared by every process. They are read
  at the first signal a process sends, then again at most every
  ``RECEIVER_SWITCHES_REFRESH_SECONDS`` (and when a switch's expiry passes),
  never once per signal: between reads the names come from a snapshot here.

Each snapshot also keeps every off switch's reason and who switched it off,
and each ``muted()`` block what muted it, so a receiver's ``when_off`` handler
(:func:`switches.wrapping.switchable`) can record why the receiver did not run
(:class:`SwitchInfo`) without another query.

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
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import NamedTuple

from django.conf import settings
from django.db import DatabaseError, connections, router, transaction
from django.utils import timezone

from dbtools.errors import first_line

logger = logging.getLogger(__name__)

DEFAULT_REFRESH_SECONDS = 5.0

muted_names: ContextVar[frozenset[str]] = ContextVar("receiver_switches_muted", default=frozenset())
# What muted each name in ``muted_names`` ("" when the block gave no reason);
# set together with it, and only read once a receiver is found muted.
muted_reasons: ContextVar[Mapping[str, str]] = ContextVar(
    "receiver_switches_muted_reasons", default=MappingProxyType({})
)


@dataclass(frozen=True)
class SwitchInfo:
    """Why a switchable receiver did not run: switched off in the database, or muted.

    ``by`` is who switched it off (empty for a mute); ``reason`` is the
    switch's reason, or what the ``muted()`` block said muted it.
    """

    name: str
    muted: bool
    reason: str = ""
    by: str = ""
    expires_at: datetime | None = None

    def describe(self) -> str:
        """One line: "NAME switched off by alice: CRM import", "NAME muted: seed run 12"."""
        text = f"{self.name} muted" if self.muted else f"{self.name} switched off"
        if self.by:
            text += f" by {self.by}"
        if self.expires_at is not None:
            text += f" until {self.expires_at.isoformat(timespec='seconds')}"
        return f"{text}: {self.reason}" if self.reason else text


class _Snapshot(NamedTuple):
    fresh_until: float  # time.monotonic()
    switches: Mapping[str, SwitchInfo]  # the names switched off, with their reasons


# One snapshot per value of the signal's ``using`` (None for signals without one).
_snapshots: dict[str | None, _Snapshot] = {}
_monotonic = time.monotonic
# Databases where this process changed switches in a transaction not over yet.
_uncommitted: set[str] = set()


def cached_switches(using: str | None) -> Mapping[str, SwitchInfo] | None:
    """The off switches for ``using``, by name, if the snapshot is fresh, else None."""
    snapshot = _snapshots.get(using)
    if snapshot is not None and snapshot.fresh_until > _monotonic():
        return snapshot.switches
    return None


def switches_off(using: str | None) -> Mapping[str, SwitchInfo]:
    """The switches off in the database for a signal about ``using``, by name; cached.

    What a switchable receiver looks at: ``name in switches_off(using)`` costs
    what the set of names did, and an off receiver's handler finds its switch
    there.
    """
    snapshot = _snapshots.get(using)
    if snapshot is not None and snapshot.fresh_until > _monotonic():
        return snapshot.switches
    return _refresh(using).switches


def muted_switch(name: str) -> SwitchInfo | None:
    """``name``'s mute in the current context, with what muted it; None when not muted."""
    if name not in muted_names.get():
        return None
    return SwitchInfo(name=name, muted=True, reason=muted_reasons.get().get(name, ""))


def holding_off(name: str, *, using: str | None) -> SwitchInfo | None:
    """What keeps ``name`` from running now: its mute here, else its switch in the
    database for ``using``; None while it is on. For code that writes in bulk and
    must honour a receiver no signal will reach (no query while the snapshot is fresh)."""
    return muted_switch(name) or switches_off(using).get(name)


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


def _refresh(using: str | None) -> _Snapshot:
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
    for switch in rows:
        if switch.expires_at is not None:
            fresh_for = min(fresh_for, max((switch.expires_at - now).total_seconds(), 0.0))
    # A plain dict: ``name in`` it is the receivers' hot path.
    switches = {switch.name: switch for switch in rows}
    snapshot = _Snapshot(started + fresh_for, switches)
    _snapshots[using] = snapshot
    return snapshot


def _read(alias: str, now: datetime) -> list[SwitchInfo]:
    from switches.models import ReceiverSwitch

    fields = ("name", "reason", "switched_off_by", "expires_at")
    rows = ReceiverSwitch.objects.using(alias).active(now).values_list(*fields)
    if connections[alias].in_atomic_block:
        # A savepoint, so that a failed read (no table yet) cannot break the
        # transaction the signal is sent from on PostgreSQL.
        with transaction.atomic(using=alias):
            return _switches(rows)
    return _switches(rows)


def _switches(rows: Iterable[tuple[str, str, str, datetime | None]]) -> list[SwitchInfo]:
    # Iterating the queryset runs it: only here, inside the caller's savepoint.
    return [
        SwitchInfo(name=name, muted=False, reason=reason, by=by, expires_at=expires_at)
        for name, reason, by, expires_at in rows
    ]
