"""Delivery in real processes, against a real SMTP server (tests/helpers/smtp.py):
db_worker processes (TASKS_BACKEND=database), a sender and a worker killed mid-batch,
and a mail server refusing connections.

What was sent is asserted against the server's Message-IDs, duplicates included.
A kill lands mid-batch because the server holds its reply to the K-th message
and the test waits for the server to have it, never by sleeping; the lease
(WELCOME_MAIL_LEASE_SECONDS=2 in the children) runs out by the database's
clock, which the test waits on.
"""

from __future__ import annotations

import math
import signal
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from profiles.models import WelcomeMail
from profiles.welcome.message import message_id
from profiles.welcome.records import pending_values
from tests.helpers.processes import completed, spawned, wait_until
from tests.helpers.smtp import SmtpSink, refusing_environment, smtp_sink
from tests.helpers.users import bulk_users

pytestmark = pytest.mark.django_db(transaction=True)

Status = WelcomeMail.Status
LEASE = {"WELCOME_MAIL_LEASE_SECONDS": "2"}
WORKER = {"TASKS_BACKEND": "database", **LEASE}
TASK_TABLE = "django_tasks_database_dbtaskresult"
SQLITE = connection.vendor == "sqlite"


@pytest.fixture
def sink():
    with smtp_sink() as server:
        yield server


@pytest.fixture
def task_queue():
    """django-tasks-db's table in the test database (the test process does not install
    the app), empty before and after."""
    migrated = completed("migrate", "django_tasks_database", "--no-input", "-v", "0", env=WORKER)
    assert migrated.returncode == 0, migrated.stderr
    _clear_tasks()
    yield
    _clear_tasks()


def _clear_tasks() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TASK_TABLE}")


def task_statuses() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT status, count(*) FROM {TASK_TABLE} GROUP BY status")
        return {status: int(n) for status, n in cursor.fetchall()}


def pending(count: int) -> list[Any]:
    made = bulk_users(count)
    WelcomeMail.objects.bulk_create(
        [WelcomeMail(user_id=u.pk, **pending_values()) for u in made], batch_size=1000
    )
    return made


def enqueue_due(tasks: int, *, batch_size: int, sink: SmtpSink) -> None:
    """``tasks`` deliver_due_welcome_mails tasks in the queue, from a child (this process
    has no django_tasks_db)."""
    code = (
        "from profiles.welcome.tasks import deliver_due_welcome_mails as t\n"
        f"for _ in range({tasks}): t.enqueue(batch_size={batch_size})\n"
    )
    result = completed("shell", "-c", code, env={**WORKER, **sink.environment()})
    assert result.returncode == 0, result.stderr


def worker_args(name: str) -> tuple[str, ...]:
    return (
        "db_worker",
        "--batch",
        "--no-reload",
        "--no-startup-delay",
        "--interval",
        "0.05",
        "--worker-id",
        name,
    )


def leases_ran_out() -> bool:
    return not WelcomeMail.objects.filter(status=Status.SENDING, due_at__gt=timezone.now()).exists()


def assert_all_sent(made: list[Any], sink: SmtpSink) -> None:
    assert WelcomeMail.objects.filter(status=Status.SENT).count() == len(made)
    assert set(sink.message_ids()) == {message_id(u.pk) for u in made}


# -- (a) workers on any number of hosts: none delivered twice --


def test_db_workers_deliver_a_few_thousand_records_none_twice(sink, task_queue):
    # SQLite has one writer: one worker (a second would only queue on the write lock).
    workers = 1 if SQLITE else 2
    made = pending(2000)
    batch = 50
    enqueue_due(math.ceil(len(made) / batch) + workers, batch_size=batch, sink=sink)
    # The default lease (300 s): a 2 s one could run out under a batch on a busy
    # machine, and the other worker would rightly send its mails again.
    env = {**WORKER, "WELCOME_MAIL_LEASE_SECONDS": None, **sink.environment()}
    with (
        spawned(*worker_args("w1"), env=env) as first,
        spawned(*worker_args("w2"), env=env) as second,
    ):
        procs = [first, second][:workers]
        if workers == 1:
            second.kill()
        for proc in procs:
            _out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err
    assert_all_sent(made, sink)
    assert sink.duplicates() == {}
    assert sink.count() == len(made)
    assert task_statuses() == {"SUCCESSFUL": math.ceil(len(made) / batch) + workers}
    if workers == 2:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT worker_ids FROM {TASK_TABLE}")
            ran_on = {ids for (ids,) in cursor.fetchall()}
        assert any("w1" in ids for ids in ran_on) and any("w2" in ids for ids in ran_on)


# -- (b), (c) a worker and a sender killed mid-batch --


def test_a_worker_killed_mid_task_leaves_a_lease_the_next_worker_takes_over(sink, task_queue):
    made = pending(50)
    enqueue_due(1, batch_size=20, sink=sink)
    env = {**WORKER, **sink.environment()}
    sink.hold_at(5)  # the 5th mail's reply waits: the worker is mid-batch
    with spawned(*worker_args("doomed"), env=env) as doomed:
        wait_until(lambda: sink.count() >= 5, doomed)
        held = sink.received[4].message_id
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
    sink.release()
    # django-tasks-db's limbo (its issue #46): the task stays RUNNING for ever.
    assert task_statuses() == {"RUNNING": 1}
    assert WelcomeMail.objects.filter(status=Status.SENT).count() == 4
    assert WelcomeMail.objects.filter(status=Status.SENDING).count() == 16
    wait_until(leases_ran_out, timeout=30)
    enqueue_due(4, batch_size=20, sink=sink)
    finished = completed(*worker_args("heir"), env=env, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert_all_sent(made, sink)
    # The one mail in flight went out twice: the server had it, its mark never came.
    assert sink.duplicates() == {held: 2}
    assert WelcomeMail.objects.get(message_id=held).attempts == 2


def test_a_sender_killed_mid_batch_leaves_a_lease_the_next_run_takes_over(sink):
    made = pending(50)
    sink.hold_at(5)
    env = {**LEASE, **sink.environment()}
    with spawned("welcome_mails", "send", "--batch-size", "20", "--jobs", "1", env=env) as doomed:
        wait_until(lambda: sink.count() >= 5, doomed)
        held = sink.received[4].message_id
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
    sink.release()
    assert WelcomeMail.objects.filter(status=Status.SENT).count() == 4
    assert WelcomeMail.objects.filter(status=Status.SENDING).count() == 16
    wait_until(leases_ran_out, timeout=30)
    rerun = completed("welcome_mails", "send", env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.startswith("Sent 46 welcome mail(s) ")  # the leased 16 and the 30
    assert_all_sent(made, sink)
    assert sink.duplicates() == {held: 2}


def test_sigterm_stops_a_sender_between_two_mails_and_gives_the_rest_back(sink):
    made = pending(30)
    sink.hold_at(3)
    env = {**LEASE, **sink.environment()}
    with spawned("welcome_mails", "send", "--batch-size", "20", "--jobs", "1", env=env) as sender:
        wait_until(lambda: sink.count() >= 3, sender)
        sender.send_signal(signal.SIGTERM)
        sink.release()
        _out, err = sender.communicate(timeout=60)
    assert sender.returncode == 143, err
    assert err.startswith("CommandError: interrupted after sending 3 welcome mail(s)")
    assert WelcomeMail.objects.filter(status=Status.SENT).count() == 3
    assert WelcomeMail.objects.filter(status=Status.PENDING, attempts=0).count() == 27
    rerun = completed("welcome_mails", "send", "-v", "0", env=env)
    assert (rerun.returncode, rerun.stdout) == (0, "")
    assert_all_sent(made, sink)
    assert sink.duplicates() == {}


# -- (d) a mail server refusing connections --


def test_users_saved_while_the_mail_server_refuses_are_mailed_by_a_later_send(sink):
    refused = refusing_environment()
    seeded = completed("seed_users", "20", "--via", "save", env=refused)
    assert seeded.returncode == 0, seeded.stderr
    assert "Traceback" not in seeded.stderr
    assert WelcomeMail.objects.filter(status=Status.PENDING).count() == 20
    assert sink.count() == 0
    down = completed("welcome_mails", "send", env=refused)
    assert down.returncode == 75
    assert down.stderr.strip().endswith("20 welcome mail(s) stay pending; the next run retries.")
    up = completed("welcome_mails", "send", env=sink.environment())
    assert up.returncode == 0, up.stderr
    assert WelcomeMail.objects.filter(status=Status.SENT).count() == 20
    assert len(sink.message_ids()) == 20
    assert sink.duplicates() == {}
