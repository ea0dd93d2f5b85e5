"""What tests of the cron commands share: another session's hold on a run lock, and a
--metrics-file read as node_exporter reads it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from django.db import connections
from prometheus_client.parser import text_string_to_metric_families

from dbtools.locks import database_lock


@contextmanager
def held_elsewhere(name: str) -> Iterator[None]:
    """The lock ``name``, held by another thread on its own connection (MariaDB's
    GET_LOCK is re-entrant: the command's own connection would get it again)."""
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with database_lock(name, using="default"):
                taken.set()
                done.wait(timeout=60)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        holder = pool.submit(hold)
        assert taken.wait(timeout=30), holder.result()
        try:
            yield
        finally:
            done.set()


def metrics(path: Path) -> dict[str, float]:
    """A --metrics-file's samples, parsed by the Prometheus client: name (without the
    ``django_signals_cli_`` prefix) -> value."""
    return {
        sample.name.removeprefix("django_signals_cli_"): sample.value
        for family in text_string_to_metric_families(path.read_text())
        for sample in family.samples
    }


def command_labels(path: Path) -> set[str]:
    """The ``command`` labels of a --metrics-file's series (one per run's file)."""
    return {
        sample.labels["command"]
        for family in text_string_to_metric_families(path.read_text())
        for sample in family.samples
    }
