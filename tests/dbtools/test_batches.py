"""dbtools.batches: each batch's timeouts, and on PostgreSQL only each batch's; a stop
request cuts a retry's backoff short."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.db import OperationalError, connection

from dbtools import batches
from dbtools.batches import run_batch
from tests.helpers.stopping import StopAfterSeconds

pytestmark = pytest.mark.django_db(transaction=True)


def lock_wait_limit_seconds() -> float:
    """How long a statement on this connection would wait for a lock now."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT EXTRACT(epoch FROM current_setting('lock_timeout')::interval)")
        elif connection.vendor == "mysql":
            cursor.execute("SELECT @@innodb_lock_wait_timeout")
        else:
            cursor.execute("PRAGMA busy_timeout")
            return float(cursor.fetchone()[0]) / 1000
        return float(cursor.fetchone()[0])


def test_a_batch_waits_for_a_lock_at_most_the_lock_timeout():
    limit = run_batch(lock_wait_limit_seconds, using="default")
    assert limit == settings.DATABASE_LOCK_TIMEOUT_SECONDS


def test_a_stop_request_abandons_a_batch_waiting_to_be_retried(monkeypatch, settings):
    settings.BATCH_RETRIES, settings.BATCH_RETRY_BACKOFF_SECONDS = 5, 60
    monkeypatch.setattr(batches, "is_lock_timeout", lambda connection, exc: True)
    attempts = []

    def timing_out():
        attempts.append(1)
        raise OperationalError("lock wait timeout")

    started = time.monotonic()
    with pytest.raises(batches.BatchAbandoned):  # a signal 0.3 s into a 60 s backoff
        batches.run_batch(timing_out, using="default", stop=StopAfterSeconds(0.3))
    assert len(attempts) == 1
    assert time.monotonic() - started < 5


if connection.vendor == "postgresql":

    def test_postgresql_timeouts_are_set_local_never_for_the_session():
        """Through a transaction pooler a session setting would stay on a server connection
        that other clients get next; PgBouncer refuses a startup parameter outright."""
        assert "options" not in settings.DATABASES["default"]["OPTIONS"]
        assert run_batch(lock_wait_limit_seconds, using="default") > 0
        assert lock_wait_limit_seconds() == 0  # the server's own default again
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('statement_timeout')")
            assert cursor.fetchone()[0] == "0"
