"""Delivery through Django's Tasks framework: the one import shim, and the tasks.

``django.tasks`` on Django 6.x; the ``django-tasks`` backport on 5.2. The
tasks only carry primary keys: what to send, and whether it was sent, is in
the records, so a task run twice, run after its transaction rolled back, or
lost with a killed worker costs nothing (the lease hands the records on).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from django.db import connections, transaction

try:  # Django >= 6.0
    from django.tasks import task
except ImportError:  # Django 5.2 with django-tasks
    from django_tasks import task  # type: ignore[no-redef,unused-ignore]

if TYPE_CHECKING:
    from profiles.welcome.delivery import SendResult


@task()
def deliver_welcome_mails(
    user_pks: list[str], using: str = "default"
) -> dict[str, int | str | None]:
    """Send the due welcome mails of these users (JSON-safe pks: UUIDs as strings).

    Never raises over the mail server: a transient error or an unreachable server
    leaves the records pending (for ``welcome_mails send`` or a later task), a
    permanent one marks them failed."""
    from profiles.welcome.delivery import welcome_mails_send

    return _figures(welcome_mails_send(using=using, users=user_pks))


@task()
def deliver_due_welcome_mails(
    using: str = "default", batch_size: int = 100
) -> dict[str, int | str | None]:
    """Send one batch of whatever welcome mails are due, for a worker setup: enqueue it
    from cron or after a sync, as often as there are batches to send. Records another
    worker holds are skipped (its lease), so any number of workers can run it at once."""
    from profiles.welcome.delivery import welcome_mails_send

    return _figures(welcome_mails_send(using=using, batch_size=batch_size, limit=batch_size))


def _figures(result: SendResult) -> dict[str, int | str | None]:
    """A task's return value: JSON, stored by a worker backend with the task's result,
    so a worker's results also say when the server was unreachable or refused us."""
    return {
        "sent": result.sent,
        "failed": result.failed,
        "deferred": result.deferred,
        "suppressed": result.suppressed,
        "released": result.released,
        "unreachable": result.unreachable,
        "misconfigured": result.misconfigured,
    }


TASK_USERS = 1000


class _AfterCommit:
    """The users of one transaction whose delivery is enqueued when it commits."""

    def __init__(self, using: str, user_pk: str) -> None:
        self.using = using
        self.user_pks = [user_pk]
        self.ran = False

    def __call__(self) -> None:
        self.ran = True
        # A task per TASK_USERS users: a claim binds its users' pks, and a queue's
        # row should stay small, however many users the transaction saved.
        for start in range(0, len(self.user_pks), TASK_USERS):
            chunk = self.user_pks[start : start + TASK_USERS]
            deliver_welcome_mails.enqueue(user_pks=chunk, using=self.using)


_batches = threading.local()


def deliver_after_commit(*, user_pk: Any, using: str) -> None:
    """Enqueue the delivery of ``user_pk``'s welcome mail once the saving transaction
    commits: one task per transaction (per TASK_USERS users of it: a batch of a
    thousand users is one task), not one per user. A rolled-back user has no record, so a
    task naming it sends nothing. ``robust``: a failed enqueue (a broker down) must
    not fail the caller after its commit; the record stays pending for
    ``welcome_mails send``."""
    connection = connections[using]
    batch: _AfterCommit | None = getattr(_batches, using, None)
    # Still waiting in this transaction's on-commit list? Not once it ran (a test's
    # captured callbacks run but stay listed), nor after a rollback discarded it
    # (Django's list of (savepoints, callback, robust)).
    if (
        batch is not None
        and not batch.ran
        and any(entry[1] is batch for entry in connection.run_on_commit)
    ):
        batch.user_pks.append(str(user_pk))
        return
    batch = _AfterCommit(using, str(user_pk))
    setattr(_batches, using, batch)
    transaction.on_commit(batch, using=using, robust=True)
