"""The naive way to send welcome mails with a task queue: one task per user.

The reference of group ``welcome_delivery`` enqueues :data:`welcome_mail_one`
once per user with django-tasks-db's backend, and ``manage.py db_worker``
processes run them. Each task does what a team would write first: load the
user, send the project's welcome message over a new SMTP connection, and mark
the user's record sent (so that the harness counts the same thing for both
cases). A module of its own: the worker imports it by the task's path, and the
bench imports it only when that case runs.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.utils import timezone

from profiles.models import WelcomeMail
from profiles.welcome.message import message_id, welcome_message

try:  # Django >= 6.0
    from django.tasks import task
except ImportError:  # Django 5.2 with django-tasks
    from django_tasks import task  # type: ignore[no-redef,unused-ignore]


@task()
def welcome_mail_one(user_pk: str) -> None:
    """Send one user's welcome mail, then mark the user's record sent."""
    user = get_user_model()._default_manager.get(pk=user_pk)
    welcome_message(user).send()
    WelcomeMail.objects.filter(user_id=user.pk).update(
        status=WelcomeMail.Status.SENT, sent_at=timezone.now(), message_id=message_id(user.pk)
    )
