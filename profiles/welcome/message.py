"""The welcome message, its deterministic Message-ID, and where mail goes.

The Message-ID is a function of the user alone, so a message sent twice (a
sender killed between the server's acceptance and the record's update)
carries the same ID both times: a duplicate is detectable downstream.
"""

from __future__ import annotations

import hashlib
from email.utils import parseaddr

import django
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend


def message_id(user_pk: object) -> str:
    """``<welcome.HASH@DOMAIN>``: the same for one user every time, and no pk in clear."""
    key = f"{get_user_model()._meta.label_lower}:{user_pk}".encode()
    digest = hashlib.sha256(key).hexdigest()[:32]
    return f"<welcome.{digest}@{_domain()}>"


def recipient(user: AbstractBaseUser) -> str:
    """The user's address (the model's EMAIL_FIELD), or '' when it has none."""
    return str(getattr(user, user.get_email_field_name(), "") or "")


def welcome_message(user: AbstractBaseUser) -> EmailMessage:
    """The message to send with ``mail_connection().send_messages([...])``."""
    return EmailMessage(
        subject="Welcome!",
        body=f"Hello {user.get_username()}, your account is ready.",
        to=[recipient(user)],
        headers={"Message-ID": message_id(user.pk)},
    )


def mail_connection() -> BaseEmailBackend:
    """A new connection of the default mailer: ``mailers.default`` from Django 6.1
    (``get_connection()`` is deprecated there), ``get_connection()`` before."""
    if django.VERSION >= (6, 1):
        from django.core.mail import mailers  # type: ignore[attr-defined,unused-ignore]

        backend: BaseEmailBackend = mailers.default
        return backend
    return get_connection()


def mail_destination() -> str:
    """Where mail goes, for a command's summary: a directory, a server, or a backend."""
    backend = mail_connection()
    file_path = getattr(backend, "file_path", None)
    if file_path:
        return f"files in {file_path}"
    host = getattr(backend, "host", None)
    if host:
        return f"SMTP {host}:{getattr(backend, 'port', 25)}"
    return type(backend).__module__ + "." + type(backend).__name__


def _domain() -> str:
    _, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    return address.rpartition("@")[2] or "localhost"
