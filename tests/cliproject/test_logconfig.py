"""cliproject/logconfig.py: LOGGING for LOG_LEVEL and LOG_FORMAT, applied for real."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator
from datetime import datetime

import pytest
from django.utils.log import DEFAULT_LOGGING

from cliproject.logconfig import ERRORS_LOGGER, logging_config
from commands import clickbridge


@pytest.fixture
def configure(monkeypatch) -> Iterator[object]:
    """Apply a LOGGING to the process with stderr captured; put the test settings' back after."""

    def apply(**options: str) -> io.StringIO:
        stderr = io.StringIO()
        monkeypatch.setattr("sys.stderr", stderr)  # in the test's call: capturing is set by then
        logging.config.dictConfig(DEFAULT_LOGGING)  # as Django's setup does, first
        logging.config.dictConfig(logging_config(**options))
        return stderr

    yield apply
    from django.conf import settings

    monkeypatch.undo()  # first, so that the settings' handler gets the real stderr back
    logging.config.dictConfig(settings.LOGGING)


def test_the_loggers_the_bridge_writes_to_are_the_ones_configured():
    assert clickbridge.ERRORS_LOGGER == ERRORS_LOGGER
    config = logging_config(level="WARNING", log_format="text")
    assert config["loggers"][ERRORS_LOGGER]["propagate"] is False
    # The runs logger has no entry of its own: it reaches stderr through the root at INFO.
    assert clickbridge.RUNS_LOGGER not in config["loggers"]


def test_text_lines_at_the_level_asked(configure):
    stderr = configure(level="INFO", log_format="text")
    logging.getLogger("commands.runs").info("backfill_profiles exited %d", 0)
    logging.getLogger("commands.runs").debug("not shown")
    assert stderr.getvalue() == "INFO commands.runs: backfill_profiles exited 0\n"


def test_json_lines_are_one_object_each_with_the_record_fields(configure):
    stderr = configure(level="INFO", log_format="json")
    logging.getLogger("commands.runs").info(
        "seed_users exited %d", 0, extra={"command": "seed_users", "exit_code": 0, "rows": 5}
    )
    (line,) = stderr.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "seed_users exited 0"
    assert (record["level"], record["logger"]) == ("INFO", "commands.runs")
    assert (record["command"], record["exit_code"], record["rows"]) == ("seed_users", 0, 5)
    assert datetime.strptime(record["time"], "%Y-%m-%dT%H:%M:%S%z").tzinfo is not None


def test_an_unexpected_error_reaches_handlers_of_its_logger_and_never_stderr(configure):
    stderr = configure(level="DEBUG", log_format="text")
    seen: list[logging.LogRecord] = []

    class Tracker(logging.Handler):  # as an error tracker's handler would receive it
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    tracker = Tracker()
    errors = logging.getLogger(ERRORS_LOGGER)
    errors.addHandler(tracker)
    try:
        try:
            raise RuntimeError("boom")
        except RuntimeError as exc:
            errors.error("unexpected RuntimeError in x", exc_info=exc)
    finally:
        errors.removeHandler(tracker)
    assert stderr.getvalue() == ""  # the command already printed its one line
    (record,) = seen
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


@pytest.mark.parametrize("debug", [True, False])
def test_djangos_info_records_keep_to_log_level_whatever_debug_says(configure, settings, debug):
    # Django 6's django.tasks logs each task at INFO; Django's default handler prints
    # django.* INFO while DEBUG is on: at WARNING, cron must see none of it.
    settings.DEBUG = debug
    stderr = configure(level="WARNING", log_format="text")
    logging.getLogger("django.tasks").info("Task id=1 state=RUNNING")
    assert stderr.getvalue() == ""
    stderr = configure(level="INFO", log_format="text")
    logging.getLogger("django.tasks").info("Task id=1 state=RUNNING")
    assert stderr.getvalue() == "INFO django.tasks: Task id=1 state=RUNNING\n"  # once


def test_a_logger_with_a_lower_level_of_its_own_still_keeps_to_log_level(configure):
    stderr = configure(level="WARNING", log_format="text")
    chatty = logging.getLogger("some.library")
    chatty.setLevel(logging.DEBUG)
    try:
        chatty.info("connected")
    finally:
        chatty.setLevel(logging.NOTSET)
    assert stderr.getvalue() == ""
