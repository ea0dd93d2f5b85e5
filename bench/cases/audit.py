"""Group ``signal_audit``: what the detector costs a loop of ``create()`` calls.

Issue 14's bar: at most 1.10x while an audit is active, nothing at all while none is.
The same pre-generated users (any user model: seed_users' own field plan) are created
one ``create()`` each, receivers on, one transaction per 1000, in three ways:

- ``audit_create_plain``: no audit has run in the process (signalaudit is imported, as
  INSTALLED_APPS has it): the reference;
- ``audit_create_after_audit``: an audit started and ended before the clock starts,
  so the loop runs with the detector inactive again;
- ``audit_create_active``: the loop inside ``audit_signal_skips()``; every statement
  is read and every user insert's stack walked, and the report must come back
  empty (a skip found here would be a false positive).

At the default ``--size`` (20000) the loop is the issue's 10,000 calls. Only the loop is
timed: the users are generated in the setup, so the ratio is that of ``create()``
itself, not diluted by fake data.
"""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections, transaction
from django.utils import timezone

from bench.cases.users import BATCH_SIZE
from bench.registry import case
from bench.runner import BenchError
from seeding.generator import FakeUsers
from seeding.userfields import user_columns
from signalaudit import audit_signal_skips, detector

GROUP = "signal_audit"
SIZE_DIVISOR = 2

User = get_user_model()
_runs = itertools.count(1)


def _check_inactive(using: str) -> None:
    if detector.active() or connections[using].execute_wrappers:
        raise BenchError(
            "the detector is still installed: an audit did not end, or something left an "
            "execute wrapper on the connection; the inactive cases would not measure inactive."
        )


def users_kwargs(size: int, using: str) -> dict[str, Any]:
    """``size`` users as create() keyword arguments, for the active user model."""
    _check_inactive(using)
    columns = user_columns(password="!", joined=timezone.now())
    run = next(_runs)
    users = FakeUsers(seed=run, run_number=10**6 + run, locales=["en_US"])
    constant = {field.attname: value for field, value in columns.fixed}
    return {
        "users": [
            {**{field.attname: user[index] for field, index in columns.generated}, **constant}
            for batch in users.batches(count=size, batch_size=BATCH_SIZE)
            for user in batch
        ]
    }


def users_kwargs_after_an_audit(size: int, using: str) -> dict[str, Any]:
    """As users_kwargs, after an audit that saw a query started and ended."""
    with audit_signal_skips():
        User._default_manager.db_manager(using).exists()
    return users_kwargs(size, using)


def _create_each(users: list[dict[str, Any]], using: str) -> int:
    manager = User._default_manager.db_manager(using)
    for start in range(0, len(users), BATCH_SIZE):
        with transaction.atomic(using=using):
            for kwargs in users[start : start + BATCH_SIZE]:
                manager.create(**kwargs)
    return len(users)


@case(
    "audit_create_plain",
    group=GROUP,
    reference=True,
    setup=users_kwargs,
    size_divisor=SIZE_DIVISOR,
)
def audit_create_plain(size: int, using: str, *, users: list[dict[str, Any]]) -> int:
    """User.objects.create per user, receivers on, no audit ever started: the reference."""
    return _create_each(users, using)


@case(
    "audit_create_after_audit",
    group=GROUP,
    setup=users_kwargs_after_an_audit,
    size_divisor=SIZE_DIVISOR,
)
def audit_create_after_audit(size: int, using: str, *, users: list[dict[str, Any]]) -> int:
    """The same loop after an audit ended: the detector inactive, nothing left installed."""
    return _create_each(users, using)


@case("audit_create_active", group=GROUP, setup=users_kwargs, size_divisor=SIZE_DIVISOR)
def audit_create_active(size: int, using: str, *, users: list[dict[str, Any]]) -> int:
    """The same loop inside audit_signal_skips(): every write checked; none may be a skip."""
    with audit_signal_skips() as report:
        created = _create_each(users, using)
    if report.skips:
        raise BenchError(
            f"create() reported as a skip (a false positive): {report.skips[0].line()}"
        )
    return created
