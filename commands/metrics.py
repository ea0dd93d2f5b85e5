"""``--metrics-file PATH``: how a command's last run went, as a node_exporter textfile.

node_exporter's textfile collector reads every ``*.prom`` file of its directory
on each scrape; a command given ``--metrics-file`` writes its own file there
when its run ends, however it ends (success, failure, lock held, signal), through the
Prometheus client's ``write_to_textfile`` (a temporary file renamed over the
old one: a scrape never sees half a file). Every series carries the label
``command``, e.g. ``command="welcome_mails sync"``:

- ``django_signals_cli_last_run_start_timestamp_seconds``, ``..._end_...``,
  ``..._duration_seconds`` and ``..._exit_code``;
- ``django_signals_cli_last_success_timestamp_seconds``: the end of the last
  run that exited 0 having done its work, carried over from the previous file
  by a run that failed or skipped (``last_run_skipped`` 1: another run held
  the lock);
- ``django_signals_cli_last_run_rows``: the rows the run wrote (profiles,
  records, mails sent), when it got that far;
- whatever figures the command measured at its end, e.g.
  ``django_signals_cli_users_without_profile``.

prometheus-client is the optional extra ``.[metrics]``; without it the option
is refused (exit 78) before the run starts.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from dbtools.errors import ConfigurationError, UsageError

PREFIX = "django_signals_cli"
LAST_SUCCESS = f"{PREFIX}_last_success_timestamp_seconds"
# The gauge a command that takes a lock sets to 1 when it skipped (--if-locked skip).
SKIPPED = "last_run_skipped"


@dataclass
class RunRecord:
    """A run as it goes: the command fills in ``rows`` and ``gauges`` as it learns them."""

    command: str
    started: float = field(default_factory=time.time)
    rows: int | None = None
    # name (without the prefix) -> value, e.g. {"users_without_profile": 0}
    gauges: dict[str, float] = field(default_factory=dict)


def usable_metrics_file(value: str) -> Path:
    """The path, once it is sure a file can be written there: exit 2 or 78 if not."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "--metrics-file needs prometheus-client: pip install -e '.[metrics]'."
        ) from None
    path = Path(value)
    directory = path.parent
    if path.is_dir():
        raise UsageError(f"--metrics-file {value!r} is a directory; name a file, e.g. x.prom.")
    if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(
            f"--metrics-file {value!r}: the directory {str(directory)!r} does not exist "
            "or is not writable."
        )
    return path


def write_textfile(path: Path, record: RunRecord, *, exit_code: int) -> None:
    """Write ``record`` as it ended with ``exit_code``, atomically."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    ended = time.time()
    registry = CollectorRegistry()

    def gauge(name: str, value: float, documentation: str) -> None:
        metric = Gauge(f"{PREFIX}_{name}", documentation, ["command"], registry=registry)
        metric.labels(command=record.command).set(value)

    gauge("last_run_start_timestamp_seconds", record.started, "When the last run started.")
    gauge("last_run_end_timestamp_seconds", ended, "When the last run ended.")
    gauge("last_run_duration_seconds", ended - record.started, "How long the last run took.")
    gauge("last_run_exit_code", exit_code, "The last run's exit code (75: try again later).")
    # A run that skipped (another held the lock) did no work: a run that hangs with the
    # lock must not look fresh, so it carries the last success over as a failure does.
    succeeded = exit_code == 0 and not record.gauges.get(SKIPPED)
    last_success = ended if succeeded else _previous_success(path, record.command)
    if last_success is not None:
        gauge("last_success_timestamp_seconds", last_success, "When a run last exited 0.")
    if record.rows is not None:
        gauge("last_run_rows", record.rows, "Rows the last run wrote.")
    for name, value in sorted(record.gauges.items()):
        gauge(name, value, f"{name.replace('_', ' ').capitalize()}, as the last run ended.")
    write_to_textfile(str(path), registry)


def _previous_success(path: Path, command: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == LAST_SUCCESS and sample.labels.get("command") == command:
                    return float(sample.value)
    except ValueError:  # not a file of ours, or damaged: start afresh
        return None
    return None
