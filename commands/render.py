"""JSON output, written the same way by every command.

One object on one line (``--format json`` is for scripts: ``jq`` and cron
mail). Figures are taken from a service's result object by name, so a key
means the same field everywhere; seconds are rounded to the millisecond and
rates to a tenth, pks and datetimes are written by DjangoJSONEncoder (a UUID
pk as its string), and a signal number as its name (``SIGTERM``). ASCII only,
so the output survives any locale a cron job runs under.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Mapping
from typing import Any

from django.core.management.base import BaseCommand
from django.core.serializers.json import DjangoJSONEncoder


def figures(result: object, *names: str, **extra: Any) -> dict[str, Any]:
    """``names`` read from ``result`` (fields or properties), in order, then ``extra``."""
    picked = {name: _figure(name, getattr(result, name)) for name in names}
    return {**picked, **{name: _figure(name, value) for name, value in extra.items()}}


def signal_name(signum: int | None) -> str | None:
    return None if signum is None else signal.Signals(signum).name


def write_json(cmd: BaseCommand, values: Mapping[str, Any]) -> None:
    cmd.stdout.write(json.dumps(values, cls=DjangoJSONEncoder))


def _figure(name: str, value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 1 if name.endswith("_per_second") else 3)
    return value
