"""Reads: every receiver with its switch, as ``manage.py receivers list`` shows them."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, replace
from datetime import datetime

from django.utils import timezone

from switches import state
from switches.introspection import ConnectedReceiver, connected_receivers
from switches.models import ReceiverSwitch
from switches.names import project_packages, top_level_package


@dataclass(frozen=True)
class ReceiverState(ConnectedReceiver):
    """A connected receiver and whether it runs.

    ``state`` is "off" (switched off in the database), "muted" (by ``muted()``
    in the current context) or "on". A receiver that is not switchable is
    always "on".
    """

    state: str = "on"
    switched_off_at: datetime | None = None
    switched_off_by: str = ""
    reason: str = ""
    expires_at: datetime | None = None
    seconds_left: int | None = None


def receivers_list(*, using: str) -> list[ReceiverState]:
    """Every receiver of the model, request and auth signals, with the switches in ``using``.

    The project's own receivers come first, then those of installed packages,
    then Django's (:func:`origin_rank`); within each, in signal order, then in
    the order they were connected, the order Django calls them in.
    """
    now = timezone.now()
    stored = {s.name: s for s in ReceiverSwitch.objects.using(using).active(now)}
    muted = state.muted_names.get()
    result = []
    for connection in connected_receivers():
        receiver = ReceiverState(**asdict(connection))
        switch = stored.get(connection.name) if connection.switchable else None
        if switch is not None:
            left = None
            if switch.expires_at is not None:
                left = max(math.ceil((switch.expires_at - now).total_seconds()), 0)
            receiver = replace(
                receiver,
                state="off",
                switched_off_at=switch.switched_off_at,
                switched_off_by=switch.switched_off_by,
                reason=switch.reason,
                expires_at=switch.expires_at,
                seconds_left=left,
            )
        elif connection.switchable and connection.name in muted:
            receiver = replace(receiver, state="muted")
        result.append(receiver)
    rank = origin_rank(project_packages())
    return sorted(result, key=lambda r: rank(r.name))


def origin_rank(project: Collection[str]) -> Callable[[str], int]:
    """0 for a receiver of the ``project`` packages, 1 for a third party's, 2 for Django's.

    What a reader of the list looks for is what the project connected; Django's
    own receivers (closing connections at the end of a request) are the same
    in every project.
    """

    def rank(name: str) -> int:
        package = top_level_package(name)
        if package in project:
            return 0
        return 2 if package == "django" else 1

    return rank
