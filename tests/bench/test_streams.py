"""The one-stream case forces one stream, in the group of the other user inserts."""

from __future__ import annotations

import threading

import pytest
from django.db.backends.signals import connection_created

from bench import registry, runner
from bench.cases.users import GROUP
from seeding.streams import THREAD_NAME_PREFIX
from seeding.writer import default_streams

pytestmark = pytest.mark.django_db(transaction=True)


def stream_connections(case_name: str) -> int:
    """Connections the streams opened while the case ran."""
    opened = []

    def record(sender, connection, **kwargs):
        if threading.current_thread().name.startswith(THREAD_NAME_PREFIX):
            opened.append(connection)

    [case] = [c for c in registry.all_cases() if c.name == case_name]
    connection_created.connect(record, dispatch_uid="test-bench-streams")
    try:
        [result] = runner.run_cases([case], size=12_000, repeat=1, using="default")
    finally:
        connection_created.disconnect(dispatch_uid="test-bench-streams")
    assert result.size == 12_000
    return len(opened)


def test_the_one_stream_case_is_in_the_user_inserts_group():
    [case] = [c for c in registry.all_cases() if c.name == "seed_users_bulk_one_stream"]
    assert case.group == GROUP and not case.reference


def test_the_one_stream_case_opens_no_stream_and_the_default_does_where_it_has_two():
    assert stream_connections("seed_users_bulk_one_stream") == 0
    two = default_streams(via="bulk", using="default") == 2
    # Warm-up and one timed repetition: each opens one connection per stream.
    assert stream_connections("seed_users_bulk") == (4 if two else 0)
