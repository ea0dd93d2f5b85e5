"""Signal receivers of this project: each a few lines that call a service.

Each is ``@switchable``: ``manage.py receivers off NAME`` (every process) and
``switches.muting.muted(NAME)`` (one block of code) turn it off by its dotted
name, e.g. ``profiles.receivers.send_welcome_email``. See docs/receivers.md.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models.signals import post_save

from profiles import services
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


@switchable
def send_welcome_email(
    sender: type[AbstractBaseUser],
    instance: AbstractBaseUser,
    created: bool,
    raw: bool = False,
    using: str = "default",
    **kwargs: Any,
) -> None:
    # on_commit: a user whose transaction rolls back never existed, so gets no mail.
    if created and not raw:
        transaction.on_commit(partial(services.welcome_email_send, user=instance), using=using)


def connect() -> None:
    user_model = get_user_model()
    post_save.connect(
        create_profile, sender=user_model, dispatch_uid="profiles.receivers.create_profile"
    )
    post_save.connect(
        send_welcome_email, sender=user_model, dispatch_uid="profiles.receivers.send_welcome_email"
    )
