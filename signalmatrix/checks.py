"""System checks about the project's receivers.

``signalmatrix.W002`` (a receiver connected twice) reads only the signals in
memory, so it runs before every command. The other two read the database: they
carry the ``database`` tag and run with ``check --database ALIAS`` and before
``migrate``, and stay silent when the database cannot be used (not migrated
yet, unreachable): Django's own checks and migrate say so.

A check inspects; it never raises. What W003 cannot check on this user model
it says as ``signalmatrix.W004``; any other failure of a check here becomes
``signalmatrix.W005`` (:func:`switches.checks.never_raises`), so ``migrate``
and ``check`` never stop on a traceback of ours.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.apps import AppConfig, apps
from django.conf import settings
from django.core import checks
from django.db import DatabaseError, transaction

from signalmatrix.services import RawSaveProbeError, raw_save_writers
from switches.checks import never_raises
from switches.models import ReceiverSwitch
from switches.registry import connected_receivers, switchable_names


def register() -> None:
    checks.register(check_receivers_connected_once)
    checks.register(check_switches_name_existing_receivers, checks.Tags.database)
    checks.register(check_raw_saves_write_no_rows, checks.Tags.database)


@never_raises("signalmatrix.W001", failure_id="signalmatrix.W005")
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
                id="signalmatrix.W001",
            )
            for name in sorted(stored - known)
        ]
    return messages


@never_raises("signalmatrix.W002", failure_id="signalmatrix.W005")
def check_receivers_connected_once(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """A receiver of this project connected twice to one signal and sender runs twice."""
    project = _project_packages()
    connections = Counter(
        (c.name, c.signal, c.sender)
        for c in connected_receivers()
        if c.name.split(".", 1)[0] in project
    )
    return [
        checks.Warning(
            f"{name} is connected {count} times to {signal} for "
            f"{sender or 'every sender'}, so it runs {count} times for each signal.",
            hint="Connect it once, in AppConfig.ready(), with a dispatch_uid: ready() can "
            "run more than once, and a receiver connected from a module that is imported "
            "under two names is two receivers.",
            obj=name,
            id="signalmatrix.W002",
        )
        for (name, signal, sender), count in connections.items()
        if count > 1
    ]


@never_raises("signalmatrix.W003", failure_id="signalmatrix.W005")
def check_raw_saves_write_no_rows(
    app_configs: Sequence[AppConfig] | None = None,
    databases: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[checks.CheckMessage]:
    """A user-model receiver of this project must not write related rows for raw=True saves.

    Only this project's receivers are probed: the probe calls them, and a
    check must not run the code of installed packages.
    """
    messages: list[checks.CheckMessage] = []
    for alias in databases or ():
        try:
            writers = raw_save_writers(using=alias, packages=_project_packages())
        except DatabaseError:
            continue
        except RawSaveProbeError as exc:
            messages.append(
                checks.Warning(
                    f"signalmatrix.W003 cannot check the receivers of "
                    f"{settings.AUTH_USER_MODEL} on database {alias!r}: {exc}.",
                    hint="Give the field it names a default; or make sure by hand that the "
                    "user-model receivers return early when raw is True, and silence this "
                    "with SILENCED_SYSTEM_CHECKS = ['signalmatrix.W004'].",
                    obj=settings.AUTH_USER_MODEL,
                    id="signalmatrix.W004",
                )
            )
            continue
        messages += [
            checks.Warning(
                f"{w.receiver} ({w.signal}) writes rows to {', '.join(w.tables)} for a "
                f"raw=True save of a user (loaddata), checked on database {alias!r}; a fixture "
                "that brings those rows itself then fails on a duplicate or loads them twice.",
                hint="Return early when raw is True, as profiles.receivers.create_profile does; "
                "create the missing rows afterwards with 'manage.py backfill_profiles' or the "
                "service the receiver calls.",
                obj=w.receiver,
                id="signalmatrix.W003",
            )
            for w in writers
        ]
    return messages


def _project_packages() -> set[str]:
    """Top-level packages of this project's own code, not of what is installed in a venv.

    The packages in the project directory (``BASE_DIR``: the apps, ``tests``)
    and the installed apps that live below it outside any site-packages.
    """
    base = Path(getattr(settings, "BASE_DIR", "/nonexistent")).resolve()
    packages = {init.parent.name for init in base.glob("*/__init__.py")}
    for config in apps.get_app_configs():
        path = Path(config.path).resolve()
        if path.is_relative_to(base) and not {"site-packages", "dist-packages"} & set(path.parts):
            packages.add(config.name.split(".", 1)[0])
    return packages
