"""The welcome mail as a record: reconcile, delivery, and its cost to seed_users --via save.

- ``welcome_sync``: creating the pending records of users who have none, against
  one raw ``INSERT ... SELECT``;
- ``welcome_delivery``: delivering pending records to a local SMTP sink, against
  one django-tasks-db task per user run by ``manage.py db_worker``;
- ``seed_welcome``: ``seed_users --via save`` with the mail receiver on (records
  written, mail sent after each commit through the ImmediateBackend) against
  the same run with it muted.

The mail groups send real SMTP to a counting sink on 127.0.0.1 in a process of
its own (:mod:`bench.smtp_sink`), started once for the consecutive cases that
use it. Their rows are the mails sent: the harness checks the body's count
against the records marked sent, and those against what the sink received (each
Message-ID once).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.color import no_style
from django.db import connections, transaction
from django.test.utils import override_settings

from bench.cases.seeding import seed_users_run
from bench.registry import case
from bench.runner import BenchError
from bench.smtp_sink import SmtpSink, smtp_mail_settings, smtp_sink
from profiles.backfill import default_batch_size
from profiles.models import WelcomeMail
from profiles.welcome.delivery import welcome_mails_send as send_service
from profiles.welcome.records import pending_values
from profiles.welcome.sync import welcome_mails_sync as sync_service
from switches.muting import muted

SYNC = "welcome_sync"
DELIVERY = "welcome_delivery"
SEED = "seed_welcome"
RECEIVER = "profiles.receivers.send_welcome_email"
SEED_BATCH_SIZE = 5000  # as seed_users' own cases (bench/cases/seeding.py)
# The reference drains one task per user at some tens per second: a fraction
# of the size keeps a repetition in seconds (500 tasks at --size 1000000).
TASKS_DIVISOR = 2000
WORKER_TIMEOUT_SECONDS = 3600
MANAGE_PY = Path(__file__).resolve().parents[2] / "manage.py"

User = get_user_model()
_sink: SmtpSink | None = None


# --- shared setup ------------------------------------------------------------


def users_without_records(size: int, using: str) -> dict[str, Any]:
    """``size`` users made by seed_users' bulk path, none with a welcome record."""
    seed_users_run(size, using, batch_size=20000)
    # Should the bulk path ever write records itself, start from none all the same.
    if WelcomeMail.objects.using(using).exists():
        connection = connections[using]
        connection.ops.execute_sql_flush(
            connection.ops.sql_flush(no_style(), [WelcomeMail._meta.db_table])
        )
    return {}


def records_insert_select(using: str) -> int:
    """One INSERT ... SELECT of a pending record for every user; the rows inserted."""
    connection = connections[using]
    qn = connection.ops.quote_name
    values = {**pending_values(), "attempts": 0, "message_id": ""}
    fields = {field.name: field for field in WelcomeMail._meta.concrete_fields}
    columns = [fields[name] for name in values]
    params = [field.get_db_prep_save(values[field.name], connection) for field in columns]
    names = [str(fields["user"].column), *(str(f.column) for f in columns)]
    pk_column = str(User._meta.concrete_model._meta.pk.column)  # type: ignore[union-attr]
    sql = (
        f"INSERT INTO {qn(WelcomeMail._meta.db_table)} ({', '.join(qn(c) for c in names)}) "
        f"SELECT {qn(pk_column)}, {', '.join(['%s'] * len(columns))} "
        f"FROM {qn(User._meta.db_table)}"
    )
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


# --- welcome_sync ------------------------------------------------------------


@case(
    "welcome_raw_insert_select",
    group=SYNC,
    reference=True,
    setup=users_without_records,
    counts=WelcomeMail,
)
def welcome_raw_insert_select(size: int, using: str) -> int:
    """One raw INSERT ... SELECT of a pending record per user, one transaction: the limit."""
    return records_insert_select(using)


@case("welcome_mails_sync", group=SYNC, setup=users_without_records, counts=WelcomeMail)
def welcome_mails_sync(size: int, using: str) -> int:
    """welcome_mails sync's service at its default batch size, one batch at a time."""
    return sync_service(using=using, batch_size=default_batch_size(using=using)).created


@case("welcome_mails_sync_2_jobs", group=SYNC, setup=users_without_records, counts=WelcomeMail)
def welcome_mails_sync_2_jobs(size: int, using: str) -> int:
    """welcome_mails sync --jobs 2: two batches at once on two connections (SQLite: one)."""
    batch_size = default_batch_size(using=using)
    return sync_service(using=using, batch_size=batch_size, jobs=2).created


# --- the SMTP sink, for welcome_delivery and seed_welcome ---------------------


@contextlib.contextmanager
def mail_to_sink(using: str) -> Iterator[SmtpSink]:
    """A counting SMTP sink in its own process, and mail settings pointing at it."""
    global _sink
    with smtp_sink() as sink, override_settings(**smtp_mail_settings(sink.host, sink.port)):
        _sink = sink
        try:
            yield sink
        finally:
            _sink = None


def sink() -> SmtpSink:
    if _sink is None:
        raise BenchError("the mail cases run only inside their SMTP sink (mail_to_sink).")
    return _sink


def mails_sent(using: str) -> int:
    """welcome records sent, each received once by the SMTP sink."""
    sent = WelcomeMail.objects.using(using).filter(status=WelcomeMail.Status.SENT).count()
    received = sink().counts()
    if received.messages != sent or received.distinct != received.messages:
        raise BenchError(
            f"{sent} welcome record(s) are marked sent, but the SMTP sink received "
            f"{received.messages} message(s) ({received.distinct} distinct Message-IDs)."
        )
    return sent


def users_unmailed(using: str) -> int:
    """users, and no mail received by the SMTP sink."""
    received = sink().counts()
    if received.messages:
        raise BenchError(f"the SMTP sink received {received.messages} mail(s) while muted.")
    return User._default_manager.db_manager(using).count()


# --- welcome_delivery --------------------------------------------------------


def pending_records(size: int, using: str) -> dict[str, Any]:
    """``size`` users with a pending record each; the sink's counts at zero."""
    users_without_records(size, using)
    records_insert_select(using)
    sink().reset()
    return {}


def pending_records_one_task_each(size: int, using: str) -> dict[str, Any]:
    """Pending records as above, and one django-tasks-db task per user, enqueued."""
    from bench.welcome_task import welcome_mail_one

    pending_records(size, using)
    pks = User._default_manager.db_manager(using).values_list("pk", flat=True)
    with override_settings(TASKS={"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}):
        for pk in pks.iterator():
            welcome_mail_one.enqueue(user_pk=str(pk))
    return {}


@case(
    "welcome_one_task_per_user",
    group=DELIVERY,
    reference=True,
    setup=pending_records_one_task_each,
    size_divisor=TASKS_DIVISOR,
    counts=mails_sent,
    environment=mail_to_sink,
    requires_apps=("django_tasks_db",),
)
def welcome_one_task_per_user(size: int, using: str) -> int:
    """One django-tasks-db task per user (enqueued untimed), drained by one db_worker.

    The worker is ``manage.py db_worker --batch --no-startup-delay`` in a process
    of its own, as it runs on a host: each task loads its user, sends the welcome
    message over a new SMTP connection and marks the record sent. The clock
    covers the worker's start (about a second), its run and its exit.
    """
    from django_tasks_db.models import DBTaskResult

    worker_run(using=using)
    done = DBTaskResult.objects.using(using).filter(status="SUCCESSFUL").count()
    return int(done)


@case(
    "welcome_mails_send",
    group=DELIVERY,
    setup=pending_records,
    size_divisor=100,
    counts=mails_sent,
    environment=mail_to_sink,
)
def welcome_mails_send(size: int, using: str) -> int:
    """welcome_mails send --jobs 1: claims of 100 with a lease, one SMTP connection each."""
    return send_service(using=using, jobs=1).sent


@case(
    "welcome_mails_send_2_jobs",
    group=DELIVERY,
    setup=pending_records,
    size_divisor=100,
    counts=mails_sent,
    environment=mail_to_sink,
)
def welcome_mails_send_2_jobs(size: int, using: str) -> int:
    """welcome_mails send --jobs 2: two senders, each its own claims, DB and SMTP connection."""
    return send_service(using=using, jobs=2).sent


def worker_run(*, using: str) -> None:
    """Run ``manage.py db_worker --batch`` against the bench's database until it drains."""
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.worker_settings",
        # Not settings.SETTINGS_MODULE: None under override_settings.
        "BENCH_BASE_SETTINGS": os.environ["DJANGO_SETTINGS_MODULE"],
        "BENCH_DATABASES": json.dumps({"default": connections[using].settings_dict}, default=str),
        "BENCH_SMTP_PORT": str(sink().port),
    }
    command = [sys.executable, str(MANAGE_PY), "db_worker", "--batch", "--no-startup-delay"]
    finished = subprocess.run(
        [*command, "--verbosity", "0"],
        cwd=MANAGE_PY.parent,
        env=environ,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_SECONDS,
        check=False,
    )
    if finished.returncode != 0:
        last = (finished.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"db_worker exited {finished.returncode}: {last}")


# --- seed_welcome ------------------------------------------------------------


def sink_reset(size: int, using: str) -> dict[str, Any]:
    sink().reset()
    return {}


def _seed_save(size: int, using: str) -> int:
    return seed_users_run(size, using, via="save", batch_size=SEED_BATCH_SIZE)


@case(
    "seed_users_save_muted",
    group=SEED,
    reference=True,
    setup=sink_reset,
    size_divisor=100,
    counts=users_unmailed,
    environment=mail_to_sink,
)
def seed_users_save_muted(size: int, using: str) -> int:
    """seed_users --via save inside muted(send_welcome_email): suppressed records, no mail."""
    with muted(RECEIVER):
        return _seed_save(size, using)


@case(
    "seed_users_save_mail_on",
    group=SEED,
    setup=sink_reset,
    size_divisor=100,
    counts=mails_sent,
    environment=mail_to_sink,
)
def seed_users_save_mail_on(size: int, using: str) -> int:
    """seed_users --via save, receiver on: a pending record per user, mailed after each commit.

    Through the default ImmediateBackend: one delivery task per transaction of
    5000 users, sending to the SMTP sink before seed_users goes on.
    """
    return _seed_save(size, using)


def users_queued(using: str) -> int:
    """users, each with a pending record and its delivery queued (no mail sent yet)."""
    from django_tasks_db.models import DBTaskResult

    users = User._default_manager.db_manager(using).count()
    pending = WelcomeMail.objects.using(using).filter(status=WelcomeMail.Status.PENDING).count()
    tasks = DBTaskResult.objects.using(using).values_list("args_kwargs", flat=True)
    queued = sum(len(task["kwargs"]["user_pks"]) for task in tasks.iterator())
    if sink().counts().messages or pending != users or queued != users:
        raise BenchError(
            f"{users} user(s), {pending} pending record(s), {queued} queued for delivery: "
            "every user should have a pending record and be queued, with nothing sent yet."
        )
    return users


@case(
    "seed_users_save_mail_queued",
    group=SEED,
    setup=sink_reset,
    size_divisor=100,
    counts=users_queued,
    environment=mail_to_sink,
    requires_apps=("django_tasks_db",),
)
def seed_users_save_mail_queued(size: int, using: str) -> int:
    """seed_users --via save, receiver on, TASKS_BACKEND=database: a pending record per user
    and one queued delivery task per transaction, for db_worker processes elsewhere."""
    with override_settings(TASKS={"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}):
        return _seed_save(size, using)
