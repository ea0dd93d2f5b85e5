"""The system check of the receivers this project connects to the user model.

``signalmatrix.W003``: a receiver of this project that writes rows related to a
user for a ``raw=True`` save (``loaddata``). Finding out means calling the
receiver, so it probes only this project's own receivers
(:func:`switches.names.project_packages`): a check never runs the code of an
installed package. It reads the database: it carries the ``database`` tag,
runs with ``check --database ALIAS`` and before ``migrate``, and stays silent
when the database cannot be used (not migrated yet, unreachable).

A check inspects; it never raises. What W003 cannot check on this user model
it says as ``signalmatrix.W004``; any other failure becomes
``signalmatrix.W005`` (:func:`switches.checks.never_raises`), so ``migrate``
and ``check`` never stop on a traceback of ours. The checks of the switches
and of receivers connected twice are in ``switches/checks.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.db import DatabaseError

from signalmatrix.services import RawSaveProbeError, raw_save_writers
from switches.checks import never_raises
from switches.names import project_packages


def register() -> None:
    checks.register(check_raw_saves_write_no_rows, checks.Tags.database)


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
            writers = raw_save_writers(using=alias, packages=project_packages())
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
