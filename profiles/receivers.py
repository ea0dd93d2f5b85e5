"""Signal receivers of this project: each a few lines that call a service.

Each is ``@switchable``: ``manage.py receivers off NAME`` (every process) and
``switches.muting.muted(NAME)`` (one block of code) turn it off by its dotted
name, e.g. ``profiles.receivers.send_welcome_email``. See docs/receivers.md.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models.signals import post_save

from profiles import services
from profiles.welcome.records import record_new_user
from profiles.welcome.tasks import deliver_after_commit
from switches.introspection import dotted_name
from switches.state import SwitchInfo
from switches.wrapping import switchable


@switchable
def create_profile(
    sender: type[AbstractBaseUser],
    instance: AbstractBaseUser,
    created: bool,
    raw: bool = False,
    using: str = "default",
    **kwargs: Any,
) -> None:
    # raw=True is loaddata: the fixture brings its own profiles.
    if created and not raw:
        services.profile_ensure(user=instance, using=using)


def welcome_email_suppressed(
    switch: SwitchInfo,
    sender: type[AbstractBaseUser],
    instance: AbstractBaseUser,
    created: bool,
    raw: bool = False,
    using: str = "default",
    **kwargs: Any,
) -> None:
    """While send_welcome_email is off or muted: the user's record, suppressed, saying why.

    Never mailed later either: ``welcome_mails sync`` leaves a user with a record alone.
    """
    if created and not raw:
        record_new_user(user=instance, using=using, suppressed_reason=switch.describe())


@switchable(when_off=welcome_email_suppressed)
def send_welcome_email(
    sender: type[AbstractBaseUser],
    instance: AbstractBaseUser,
    created: bool,
    raw: bool = False,
    using: str = "default",
    **kwargs: Any,
) -> None:
    # The record is written in the saving transaction and rolls back with the user;
    # delivery is enqueued for after the commit. raw=True (loaddata): sync does it.
    if created and not raw and record_new_user(user=instance, using=using) == "pending":
        deliver_after_commit(user_pk=instance.pk, using=using)


# The welcome mail's receiver, by the name its switch and muted() know it.
WELCOME_MAIL_RECEIVER = dotted_name(send_welcome_email)


def connect() -> None:
    user_model = get_user_model()
    post_save.connect(
        create_profile, sender=user_model, dispatch_uid="profiles.receivers.create_profile"
    )
    post_save.connect(
        send_welcome_email, sender=user_model, dispatch_uid="profiles.receivers.send_welcome_email"
    )
