"""dbtools.batches: each batch's timeouts, and on PostgreSQL only each batch's."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection

from dbtools.batches import run_batch

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
