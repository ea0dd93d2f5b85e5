"""System checks of the receiver switches and of this project's receivers, and the guard
every check here and in ``signalmatrix`` wears.

- ``switches.W001``: a name in ``RECEIVER_SWITCHES_EXTRA`` that no switch reaches;
- ``switches.W003``: a stored switch whose receiver no longer exists;
- ``switches.W004``: a receiver of this project connected twice to one signal and sender.

W001 and W004 read only the signals in memory, so they run before every
command. W003 reads the database: it carries the ``database`` tag, runs with
``check --database ALIAS`` and before ``migrate``, and stays silent when the
database cannot be used (not migrated yet, unreachable): Django's own checks
and migrate say so. A check inspects; it never raises: a failure of any of
them is the warning ``switches.W002`` (:func:`never_raises`).
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.db import DatabaseError, transaction

from dbtools.errors import first_line
from switches.introspection import connected_receivers
from switches.models import ReceiverSwitch
from switches.names import project_packages, top_level_package
from switches.wrapping import extra_names, switchable_names

logger = logging.getLogger(__name__)

CheckFunction = Callable[..., list[checks.CheckMessage]]

# Any check of this module that fails says so under this id, instead of raising.
FAILURE_ID = "switches.W002"


def register() -> None:
    checks.register(check_extra_receivers_connected)
    checks.register(check_receivers_connected_once)
    checks.register(check_switches_name_existing_receivers, checks.Tags.database)


def never_raises(check_id: str, *, failure_id: str) -> Callable[[CheckFunction], CheckFunction]:
    """Make a system check report its own failure as a warning ``failure_id`` instead of raising.

    Checks run before ``migrate`` and every other command: one that raises
    stops Django's own commands with a traceback, over something that is at
    most worth a warning. The warning names the check (``check_id``) and the
    error; the traceback is logged at DEBUG level (``LOG_LEVEL=DEBUG``).
    """

    def decorate(check: CheckFunction) -> CheckFunction:
        @functools.wraps(check)
        def guarded(*args: Any, **kwargs: Any) -> list[checks.CheckMessage]:
            try:
                return check(*args, **kwargs)
            except Exception as exc:
                logger.debug("system check %s failed", check_id, exc_info=True)
                detail = type(exc).__name__
                if str(exc).strip():
                    detail += f": {first_line(exc)}"
                return [
                    checks.Warning(
                        f"The system check {check_id} could not run, so it checked "
                        f"nothing: {detail}",
                        hint="Run again with LOG_LEVEL=DEBUG for the traceback; until it "
                        f"is fixed, SILENCED_SYSTEM_CHECKS = [{failure_id!r}] hides this.",
                        obj=f"{check.__module__}.{check.__qualname__}",
                        id=failure_id,
                    )
                ]

        return guarded

    return decorate


@never_raises("switches.W001", failure_id=FAILURE_ID)
def check_extra_receivers_connected(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """A name in RECEIVER_SWITCHES_EXTRA that is not connected makes nothing switchable."""
    connected = {c.name for c in connected_receivers() if c.switchable}
    return [
        checks.Warning(
            f"RECEIVER_SWITCHES_EXTRA names {name!r}, which is not a switchable receiver "
            "of a model, request or auth signal, so no switch reaches it.",
            hint="Check the dotted name against 'manage.py receivers list'; the receiver "
            "must be connected by the time the 'switches' app (last in INSTALLED_APPS) "
            "is ready.",
            id="switches.W001",
        )
        for name in sorted(extra_names() - connected)
    ]


@never_raises("switches.W003", failure_id=FAILURE_ID)
def check_switches_name_existing_receivers(
    app_configs: Sequence[AppConfig] | None = None,
    databases: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[checks.CheckMessage]:
    """A stored switch whose receiver is gone (renamed, removed) switches nothing off."""
    messages: list[checks.CheckMessage] = []
    known = switchable_names()
    for alias in databases or ():
        try:
            with transaction.atomic(using=alias):  # a missing table must not break a transaction
                stored = set(ReceiverSwitch.objects.using(alias).values_list("name", flat=True))
        except DatabaseError:
            continue
        messages += [
            checks.Warning(
                f"Database {alias!r} stores a switch for the receiver {name!r}, which no "
                "longer exists; it switches nothing off.",
                hint="If the receiver was renamed or moved, switch it off under its new name "
                "('manage.py receivers list' shows them); remove this switch with "
                f"'manage.py receivers on {name} --database {alias}'.",
                obj=name,
                id="switches.W003",
            )
            for name in sorted(stored - known)
        ]
    return messages


@never_raises("switches.W004", failure_id=FAILURE_ID)
def check_receivers_connected_once(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """A receiver of this project connected twice to one signal and sender runs twice."""
    project = project_packages()
    connections = Counter(
        (c.name, c.signal, c.sender)
        for c in connected_receivers()
        if top_level_package(c.name) in project
    )
    return [
        checks.Warning(
            f"{name} is connected {count} times to {signal} for "
            f"{sender or 'every sender'}, so it runs {count} times for each signal.",
            hint="Connect it once, in AppConfig.ready(), with a dispatch_uid: ready() can "
            "run more than once, and a receiver connected from a module that is imported "
            "under two names is two receivers.",
            obj=name,
            id="switches.W004",
        )
        for (name, signal, sender), count in connections.items()
        if count > 1
    ]
