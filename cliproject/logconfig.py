"""``LOGGING`` for ``LOG_LEVEL`` and ``LOG_FORMAT``, as a plain function tests call.

Three loggers matter to an operator:

- the root logger: every log line, to stderr, as text or (``LOG_FORMAT=json``)
  one JSON object per line, by python-json-logger;
- ``commands.runs``: one INFO record as each command ends (command, exit code,
  duration, rows), with those figures as fields of the JSON object;
- ``commands.errors``: an unexpected exception, with its traceback. It goes to
  no handler of its own (stderr already has the one line), so nothing prints;
  an error tracker's logging integration (Sentry's hooks every logger) or a
  handler added in ``LOGGING`` receives it.
"""

from __future__ import annotations

from typing import Any

# Named by commands/clickbridge.py, which logs to them.
ERRORS_LOGGER = "commands.errors"

_TEXT = "%(levelname)s %(name)s: %(message)s"
_JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


def logging_config(*, level: str, log_format: str) -> dict[str, Any]:
    formatter: dict[str, Any] = (
        {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": _JSON_FIELDS,
            "datefmt": "%Y-%m-%dT%H:%M:%S%z",  # ISO 8601, with the zone
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
        if log_format == "json"
        else {"format": _TEXT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                # Also for records of loggers with a lower level of their own.
                "level": level,
            },
            "nowhere": {"class": "logging.NullHandler"},
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # Django's own default sends django.* INFO to a console handler while DEBUG
            # is on (Django 6's django.tasks logs every task so): here they go to the
            # stderr handler above, at LOG_LEVEL, like every other logger's.
            "django": {"handlers": [], "level": level, "propagate": True},
            ERRORS_LOGGER: {"handlers": ["nowhere"], "level": "ERROR", "propagate": False},
        },
    }
