"""Delivery through Django's Tasks framework with the default ImmediateBackend: a user
saved through save() is mailed right after the commit, through the record; a mail
server in trouble leaves the record pending and never breaks the caller.

Real commits (``transaction=True``): on_commit is what is under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction

from profiles.models import WelcomeMail
from profiles.welcome import tasks
from profiles.welcome.message import message_id
from profiles.welcome.records import pending_values
from profiles.welcome.tasks import deliver_due_welcome_mails, deliver_welcome_mails
from tests.helpers.smtp import refusing_settings, smtp_sink
from tests.helpers.users import bulk_users, create_user, users

try:  # the same package as the tasks' shim
    from django.tasks import TaskResultStatus
    from django.tasks.signals import task_enqueued
except ImportError:
    from django_tasks import TaskResultStatus  # type: ignore[assignment,no-redef,unused-ignore]
    from django_tasks.signals import task_enqueued  # type: ignore[no-redef,unused-ignore]

pytestmark = pytest.mark.django_db(transaction=True)

Status = WelcomeMail.Status


@pytest.fixture
def sink():
    with smtp_sink() as server, server.settings():
        yield server


@pytest.fixture
def enqueued() -> Iterator[list[Any]]:
    """The task results enqueued during the test."""
    results: list[Any] = []

    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        results.append(task_result)

    task_enqueued.connect(receiver, dispatch_uid="test_tasks.enqueued")
    try:
        yield results
    finally:
        task_enqueued.disconnect(dispatch_uid="test_tasks.enqueued")


def record(user: Any) -> WelcomeMail:
    return WelcomeMail.objects.get(user_id=user.pk)


@pytest.mark.any_user_model
def test_a_user_saved_is_mailed_right_after_the_commit_through_the_record(sink, enqueued):
    with transaction.atomic():
        user = create_user(0)
        assert record(user).status == Status.PENDING  # written in the saving transaction
        assert (sink.count(), enqueued) == (0, [])  # nothing of delivery inside save()
    assert sink.message_ids() == {message_id(user.pk): 1}
    mail = record(user)
    assert (mail.status, mail.message_id) == (Status.SENT, message_id(user.pk))
    assert [r.status for r in enqueued] == [TaskResultStatus.SUCCESSFUL]


def test_one_task_and_one_mail_connection_per_transaction(sink, enqueued):
    with transaction.atomic():
        made = [create_user(i) for i in range(3)]
    assert len(enqueued) == 1
    assert sorted(enqueued[0].kwargs["user_pks"]) == sorted(str(u.pk) for u in made)
    assert (sink.count(), sink.sessions()) == (3, 1)
    # The next transaction gets a task of its own.
    create_user(3)
    assert len(enqueued) == 2
    assert sink.count() == 4


def test_a_large_transaction_is_split_into_tasks_of_task_users(sink, enqueued, monkeypatch):
    monkeypatch.setattr(tasks, "TASK_USERS", 2)
    with transaction.atomic():
        made = [create_user(i) for i in range(5)]
    assert [len(r.kwargs["user_pks"]) for r in enqueued] == [2, 2, 1]
    assert sink.count() == 5 and len(sink.message_ids()) == len(made)


@pytest.mark.any_user_model
def test_a_mail_server_refusing_connections_leaves_the_record_pending(enqueued):
    with refusing_settings():
        user = create_user(0)  # no exception: the caller is never broken
    assert users().filter(pk=user.pk).exists()
    mail = record(user)
    assert (mail.status, mail.attempts) == (Status.PENDING, 0)
    assert "mail server unreachable" in mail.reason
    assert [r.status for r in enqueued] == [TaskResultStatus.SUCCESSFUL]
    assert enqueued[0].return_value["released"] == 1


def test_a_rolled_back_save_sends_nothing(sink, enqueued):
    with pytest.raises(RuntimeError), transaction.atomic():
        create_user(0)
        raise RuntimeError("the caller's transaction fails")
    assert not users().exists()
    assert not WelcomeMail.objects.exists()
    assert (enqueued, sink.count()) == ([], 0)


def test_a_task_for_a_user_that_never_committed_sends_nothing(sink):
    # What a broker may run (django-tasks-rq #11): a task whose transaction rolled back.
    (user,) = bulk_users(1)
    WelcomeMail.objects.create(user_id=user.pk, **pending_values())
    result = deliver_welcome_mails.enqueue(user_pks=[str(user.pk + 1000)], using="default")
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value["sent"] == 0
    assert (record(user).status, sink.count()) == (Status.PENDING, 0)


def test_a_task_run_twice_mails_once(sink):
    (user,) = bulk_users(1)
    WelcomeMail.objects.create(user_id=user.pk, **pending_values())
    for _ in range(2):
        deliver_welcome_mails.enqueue(user_pks=[str(user.pk)], using="default")
    assert sink.message_ids() == {message_id(user.pk): 1}


def test_smtp_errors_are_the_records_not_the_tasks(sink):
    made = bulk_users(2)
    for user in made:
        WelcomeMail.objects.create(user_id=user.pk, **pending_values())
    sink.refuse_recipient(getattr(made[0], made[0].get_email_field_name()))
    sink.reply_after_data(getattr(made[1], made[1].get_email_field_name()), "451 4.3.0 busy")
    result = deliver_welcome_mails.enqueue(user_pks=[str(u.pk) for u in made], using="default")
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {
        "sent": 0,
        "failed": 1,
        "deferred": 1,
        "suppressed": 0,
        "released": 0,
        "unreachable": None,
        "misconfigured": None,
    }
    assert [record(u).status for u in made] == [Status.FAILED, Status.PENDING]


def test_deliver_due_welcome_mails_sends_one_batch_of_whatever_is_due(sink):
    for user in bulk_users(5):
        WelcomeMail.objects.create(user_id=user.pk, **pending_values())
    result = deliver_due_welcome_mails.enqueue(batch_size=2)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value["sent"] == 2
    assert WelcomeMail.objects.filter(status=Status.SENT).count() == 2
    assert sink.sessions() == 1
