"""record_new_user: the welcome receiver's one-row write, against a missing user and a sync.

What the receivers do with it (pending or suppressed, delivery after commit) is
tests/profiles/test_receivers.py.
"""

from __future__ import annotations

import queue
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import IntegrityError, connections
from django.test.utils import CaptureQueriesContext

from profiles import sql
from profiles.models import WelcomeMail
from profiles.welcome.records import pending_values, record_new_user
from tests.helpers.locking import other_connection, session_id, wait_until_waiting
from tests.helpers.users import bulk_users, users

pytestmark = [pytest.mark.django_db, pytest.mark.any_user_model]


@pytest.fixture(autouse=True)
def no_cutoff(settings):
    """No WELCOME_MAIL_SINCE unless a test sets one (the environment may have one)."""
    settings.WELCOME_MAIL_SINCE = None


def record_in_own_connection(sessions: queue.Queue[int | None], user) -> str | None:
    """record_new_user in this thread's own connection (autocommit, as a receiver of a
    save outside a transaction); its session id first goes to ``sessions``."""
    try:
        sessions.put(session_id(connections["default"]))
        return record_new_user(user=user, using="default")
    finally:
        connections.close_all()  # this thread's


def test_a_record_is_one_statement_of_one_row():
    """The receiver's statement, run for every user saved: no join, no range."""
    [user] = bulk_users(1)
    with CaptureQueriesContext(connections["default"]) as queries:
        assert record_new_user(user=user, using="default") == "pending"
    [statement] = [query["sql"] for query in queries.captured_queries]
    assert statement.startswith("INSERT") and "VALUES" in statement
    assert "SELECT" not in statement


@pytest.mark.django_db(transaction=True)
def test_a_record_for_a_user_not_in_the_database_is_an_integrity_error():
    """Regression: the range statement found no user and inserted nothing: a silent None."""
    [user] = bulk_users(1)
    users().filter(pk=user.pk).delete()
    with pytest.raises(IntegrityError):
        record_new_user(user=user, using="default")
    assert not WelcomeMail.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("sync_ends", ["commit", "rollback"])
def test_the_receiver_waits_for_a_sync_batch_holding_its_users_record(sync_ends):
    """In autocommit the user is committed before post_save: a ``welcome_mails sync``
    batch may have inserted its record, not yet committed. The unique index makes
    the receiver's row wait; then whichever row is there decides."""
    made = bulk_users(30)
    user = made[10]
    # The range in the database's order of keys (MariaDB's native UUID sorts its own way).
    keys = list(users().order_by("pk").values_list("pk", flat=True))
    with other_connection(autocommit=False) as sync:
        created = sql.insert_missing(
            sync,
            model=WelcomeMail,
            values={**pending_values(), "reason": "the sync's"},
            first_pk=keys[0],
            last_pk=keys[-1],
        )
        assert created == 30
        with ThreadPoolExecutor(1) as pool:
            sessions: queue.Queue[int | None] = queue.Queue()
            running = pool.submit(record_in_own_connection, sessions, user)
            wait_until_waiting(connections["default"], sessions.get(timeout=30), running)
            getattr(sync, sync_ends)()
            status = running.result(timeout=30)
    record = WelcomeMail.objects.get(user_id=user.pk)
    if sync_ends == "commit":
        assert (status, record.reason) == (None, "the sync's")
        assert WelcomeMail.objects.count() == 30
    else:
        assert (status, record.reason) == ("pending", "")
        assert WelcomeMail.objects.count() == 1
