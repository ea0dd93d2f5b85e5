"""System checks of the receiver switches' settings, and the guard every check here wears."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks

from switches import registry

logger = logging.getLogger(__name__)

CheckFunction = Callable[..., list[checks.CheckMessage]]


def register() -> None:
    checks.register(check_extra_receivers_connected)


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
                lines = str(exc).strip().splitlines()
                detail = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
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


@never_raises("switches.W001", failure_id="switches.W002")
def check_extra_receivers_connected(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """A name in RECEIVER_SWITCHES_EXTRA that is not connected makes nothing switchable."""
    connected = {c.name for c in registry.connected_receivers() if c.switchable}
    return [
        checks.Warning(
            f"RECEIVER_SWITCHES_EXTRA names {name!r}, which is not a switchable receiver "
            "of a model, request or auth signal, so no switch reaches it.",
            hint="Check the dotted name against 'manage.py receivers list'; the receiver "
            "must be connected by the time the 'switches' app (last in INSTALLED_APPS) "
            "is ready.",
            id="switches.W001",
        )
        for name in sorted(registry.extra_names() - connected)
    ]
