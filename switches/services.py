"""Writes: switching receivers off and on for every process that uses the database.

Each function runs in one transaction on ``using``, drops this process's
cached snapshot (so the caller sees its change at once) and returns one
:class:`SwitchChange` per receiver. Other processes see the change at their
next refresh, within ``RECEIVER_SWITCHES_REFRESH_SECONDS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from dbtools.errors import UsageError
from switches import state
from switches.models import ReceiverSwitch, is_active
from switches.names import resolve_names

BY_MAX_LENGTH = 150
# The longest a switch may be set for. Python's datetime and MariaDB's DATETIME end
# at 9999-12-31 (PostgreSQL's timestamptz goes on to 294276 AD): an expiry within
# a century fits all three with room for any time zone, and nobody means longer
# than "until switched on", which is a switch without an expiry.
MAX_DURATION = timedelta(days=36500)


class SwitchArgumentError(UsageError, ValueError):
    """An expiry or ``by`` the switches cannot store; nothing was written (exit 2)."""


@dataclass(frozen=True)
class SwitchChange:
    name: str
    was_off: bool
    is_off: bool
    switched_off_at: datetime | None = None
    expires_at: datetime | None = None

    @property
    def changed(self) -> bool:
        return self.was_off != self.is_off


def receiver_switches_off(
    *, names: Sequence[str], reason: str, by: str, until: datetime | None, using: str
) -> list[SwitchChange]:
    """Switch the receivers ``names`` off, until ``until`` (None: until switched on).

    Names are checked first (:class:`~switches.names.ReceiverNameError`), so a
    bad one changes nothing; so are ``until`` and ``by``
    (:class:`SwitchArgumentError`, a ``ValueError``). A receiver already off
    stays off since the same time; its reason, ``by`` and expiry become the
    ones given here.
    """
    names = resolve_names(names)
    now = timezone.now()
    if until is not None and until <= now:
        raise SwitchArgumentError(f"the expiry {until.isoformat()} is not in the future.")
    if until is not None and until - now > MAX_DURATION:
        raise SwitchArgumentError(
            f"the expiry {until.isoformat()} is more than {MAX_DURATION.days} days away; "
            "leave it out to switch the receiver off until it is switched on."
        )
    if len(by) > BY_MAX_LENGTH:
        raise SwitchArgumentError(f"'by' is longer than {BY_MAX_LENGTH} characters.")
    switches = ReceiverSwitch.objects.using(using)
    changes = []
    with transaction.atomic(using=using):
        for name in names:
            # The row is locked whether or not it has expired, so a concurrent 'off' of
            # the same receiver waits for this one, then finds it off.
            current = (
                switches.select_for_update()
                .filter(name=name)
                .values_list("switched_off_at", is_active(now))
                .first()
            )
            stored_since, was_off = current if current is not None else (now, False)
            since = stored_since if was_off else now
            switch, _ = switches.update_or_create(
                name=name,
                defaults={
                    "reason": reason,
                    "switched_off_by": by,
                    "switched_off_at": since,
                    "expires_at": until,
                },
            )
            changes.append(
                SwitchChange(
                    name=name,
                    was_off=was_off,
                    is_off=True,
                    switched_off_at=switch.switched_off_at,
                    expires_at=switch.expires_at,
                )
            )
    state.written(using=using)
    return changes


def receiver_switches_on(*, names: Sequence[str], using: str) -> list[SwitchChange]:
    """Switch the receivers ``names`` back on.

    Besides the switchable receivers, any name with a stored switch is
    accepted, so the switch of a receiver that no longer exists can be removed.
    """
    switches = ReceiverSwitch.objects.using(using)
    names = resolve_names(names, also=set(switches.values_list("name", flat=True)))
    with transaction.atomic(using=using):
        # Every stored row of these names is locked, expired or not, in the read that
        # says which of them held their receiver off.
        stored = switches.select_for_update().filter(name__in=names)
        active = stored.values_list("name", is_active(timezone.now()))
        was_off = {name for name, still_off in active if still_off}
        switches.filter(name__in=names).delete()
    state.written(using=using)
    return [SwitchChange(name=name, was_off=name in was_off, is_off=False) for name in names]


def receiver_switches_all_on(*, using: str) -> list[SwitchChange]:
    """Switch every receiver back on; the changes list only those that were off."""
    switches = ReceiverSwitch.objects.using(using)
    with transaction.atomic(using=using):
        stored = list(
            switches.select_for_update()
            .order_by("name")
            .values_list("pk", "name", is_active(timezone.now()))
        )
        switches.filter(pk__in=[pk for pk, _, _ in stored]).delete()
    was_off = [name for _, name, active in stored if active]
    state.written(using=using)
    return [SwitchChange(name=name, was_off=True, is_off=False) for name in was_off]
