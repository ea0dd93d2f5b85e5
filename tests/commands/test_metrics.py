"""--metrics-file and the run record: the textfile, read back by the Prometheus client's
own parser, however the run ends; the run's log line; an unexpected error logged."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import ProgrammingError
from prometheus_client.parser import text_string_to_metric_families

from commands.clickbridge import ERRORS_LOGGER, RUNS_LOGGER, ClickCommand, django_command
from commands.exitcodes import ExitCode
from commands.metrics import PREFIX, RunRecord, usable_metrics_file, write_textfile
from dbtools.batches import BatchTimedOut
from dbtools.errors import ConfigurationError, UsageError
from tests.helpers.commands import run_command

COMMAND = "test_metrics"  # a test command's name in its record: the module it is defined in


@django_command(name="recorded", metrics=True)
@click.option("--rows", type=int, default=3)
@click.option(
    "--outcome",
    type=click.Choice(["ok", "locked", "bug", "interrupt", "sql_bug", "timed_out"]),
    default="ok",
)
def recorded(cmd: ClickCommand, *, rows: int, outcome: str) -> None:
    """A test command that records its rows and figures, and ends as asked."""
    cmd.run_record.rows = rows
    if cmd.metrics_wanted:
        cmd.run_record.gauges["users_without_profile"] = 7
    if outcome == "locked":
        raise CommandError("another run holds the lock", returncode=ExitCode.TEMPFAIL)
    if outcome == "bug":
        raise ZeroDivisionError("division by zero")
    if outcome == "interrupt":
        raise KeyboardInterrupt
    if outcome == "sql_bug":
        raise ProgrammingError('column "nope" does not exist')
    if outcome == "timed_out":
        raise BatchTimedOut("a batch timed out 4 times")


def samples(path: Path) -> dict[str, float]:
    """name -> value of every sample, each checked to carry the command's label."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            assert sample.labels == {"command": COMMAND}
            found[sample.name.removeprefix(f"{PREFIX}_")] = sample.value
    return found


def test_a_successful_run_writes_every_figure(tmp_path):
    path = tmp_path / "recorded.prom"
    call_command(recorded.django_command_class(), metrics_file=str(path), rows=5)
    figures = samples(path)
    assert figures["last_run_exit_code"] == 0
    assert figures["last_run_rows"] == 5
    assert figures["users_without_profile"] == 7
    start, end = (
        figures["last_run_start_timestamp_seconds"],
        figures["last_run_end_timestamp_seconds"],
    )
    assert 0 <= figures["last_run_duration_seconds"] == pytest.approx(end - start)
    assert figures["last_success_timestamp_seconds"] == end
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recorded.prom"]  # no temporary left


@pytest.mark.parametrize(
    ("outcome", "code", "raised"),
    [
        ("locked", ExitCode.TEMPFAIL, CommandError),
        ("bug", ExitCode.FAILED, ZeroDivisionError),
        ("interrupt", ExitCode.SIGINT, CommandError),  # click makes it Abort, the bridge 130
    ],
)
def test_a_failed_run_writes_its_exit_code_and_keeps_the_last_success(
    tmp_path, outcome, code, raised
):
    path = tmp_path / "recorded.prom"
    call_command(recorded.django_command_class(), metrics_file=str(path))
    succeeded = samples(path)["last_success_timestamp_seconds"]
    with pytest.raises(raised):
        call_command(recorded.django_command_class(), metrics_file=str(path), outcome=outcome)
    figures = samples(path)
    assert figures["last_run_exit_code"] == code
    assert figures["last_success_timestamp_seconds"] == succeeded
    assert figures["last_run_end_timestamp_seconds"] >= succeeded


def test_a_first_run_that_fails_has_no_last_success(tmp_path):
    path = tmp_path / "recorded.prom"
    with pytest.raises(CommandError):
        call_command(recorded.django_command_class(), metrics_file=str(path), outcome="locked")
    assert "last_success_timestamp_seconds" not in samples(path)


def test_a_damaged_file_is_replaced(tmp_path):
    path = tmp_path / "recorded.prom"
    path.write_text("this is { not a textfile\n")
    with pytest.raises(CommandError):
        call_command(recorded.django_command_class(), metrics_file=str(path), outcome="locked")
    assert samples(path)["last_run_exit_code"] == ExitCode.TEMPFAIL


def test_figures_only_a_file_shows_are_not_measured_without_one(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger=RUNS_LOGGER):
        call_command(recorded.django_command_class(), rows=2)
    (record,) = [r for r in caplog.records if r.name == RUNS_LOGGER]
    assert record.rows == 2 and not hasattr(record, "users_without_profile")


def test_every_run_ends_with_one_log_record_of_its_figures(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger=RUNS_LOGGER):
        _out, _err, code = run_command(recorded.django_command_class(), outcome="locked")
    assert code == ExitCode.TEMPFAIL
    (record,) = [r for r in caplog.records if r.name == RUNS_LOGGER]
    assert record.getMessage().startswith(f"{COMMAND} exited 75 after ")
    assert (record.command, record.exit_code, record.rows) == (COMMAND, 75, 3)
    assert record.duration_seconds >= 0


def test_an_unexpected_error_is_logged_with_its_traceback_and_an_expected_one_is_not(caplog):
    with caplog.at_level(logging.ERROR, logger=ERRORS_LOGGER):
        with pytest.raises(ZeroDivisionError):
            call_command(recorded.django_command_class(), outcome="bug")
        with pytest.raises(CommandError):
            call_command(recorded.django_command_class(), outcome="locked")
    (record,) = [r for r in caplog.records if r.name == ERRORS_LOGGER]
    assert record.getMessage() == f"unexpected ZeroDivisionError in {COMMAND}"
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError


def test_a_metrics_file_that_cannot_be_written_is_refused_before_the_run(tmp_path):
    missing = tmp_path / "no-such-dir" / "x.prom"
    _out, err, code = run_command(recorded.django_command_class(), metrics_file=str(missing))
    assert code == ExitCode.USAGE
    assert "does not exist or is not writable" in err
    _out, err, code = run_command(recorded.django_command_class(), metrics_file=str(tmp_path))
    assert (code, "is a directory" in err) == (ExitCode.USAGE, True)


def test_without_prometheus_client_the_option_is_a_configuration_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails
    with pytest.raises(ConfigurationError, match=r"pip install -e '\.\[metrics\]'"):
        usable_metrics_file(str(tmp_path / "x.prom"))
    _out, _err, code = run_command(
        recorded.django_command_class(), metrics_file=str(tmp_path / "x.prom")
    )
    assert code == ExitCode.CONFIG and not (tmp_path / "x.prom").exists()


def test_usable_metrics_file_returns_the_path(tmp_path):
    assert usable_metrics_file(str(tmp_path / "x.prom")) == tmp_path / "x.prom"
    with pytest.raises(UsageError):
        usable_metrics_file(str(tmp_path / "nope" / "x.prom"))


def test_write_textfile_is_a_rename_over_the_old_file(tmp_path):
    path = tmp_path / "x.prom"
    write_textfile(path, RunRecord(command="x"), exit_code=0)
    before = path.stat().st_ino
    write_textfile(path, RunRecord(command="x"), exit_code=0)
    assert path.stat().st_ino != before  # a new file took the name: a reader never sees half


def test_a_skipped_run_is_no_success(tmp_path):
    # A run hanging with the lock makes every later run skip: the last success must
    # not look fresh while no work is done.
    path = tmp_path / "x.prom"
    done = RunRecord(command=COMMAND, gauges={"last_run_skipped": 0})
    write_textfile(path, done, exit_code=0)
    succeeded = samples(path)["last_success_timestamp_seconds"]
    skipped = RunRecord(command=COMMAND, gauges={"last_run_skipped": 1})
    write_textfile(path, skipped, exit_code=0)
    figures = samples(path)
    assert (figures["last_run_exit_code"], figures["last_run_skipped"]) == (0, 1)
    assert figures["last_success_timestamp_seconds"] == succeeded
    assert figures["last_run_end_timestamp_seconds"] > succeeded


def test_a_database_error_that_is_no_known_outage_is_logged_as_unexpected(caplog):
    # A ProgrammingError is a bug or schema drift: exit 1 with one line, and the
    # traceback on commands.errors; a timeout (exit 75) is an outage, logged nowhere.
    with caplog.at_level(logging.ERROR, logger=ERRORS_LOGGER):
        _out, _err, code = run_command(recorded.django_command_class(), outcome="sql_bug")
        assert code == ExitCode.FAILED
        assert run_command(recorded.django_command_class(), outcome="timed_out")[2] == 75
    (record,) = [r for r in caplog.records if r.name == ERRORS_LOGGER]
    assert record.getMessage() == f"unexpected ProgrammingError in {COMMAND}"
    assert record.exc_info is not None and record.exc_info[0] is ProgrammingError


def test_the_run_record_of_a_failure_says_why(caplog):
    with caplog.at_level(logging.INFO, logger=RUNS_LOGGER):
        run_command(recorded.django_command_class(), outcome="locked")
    (record,) = [r for r in caplog.records if r.name == RUNS_LOGGER]
    assert record.error == "another run holds the lock"
    assert record.getMessage().endswith(": another run holds the lock")
