"""When users joined: the rollout cutoff (``WELCOME_MAIL_SINCE``) and date ranges.

The user model's field is ``settings.WELCOME_MAIL_JOINED_FIELD`` (``date_joined``
by default). A model without it can still have welcome mails; it cannot have
a cutoff or a ``--joined-*`` range, and asking for one is a configuration
error that names the setting.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import FieldDoesNotExist

from dbtools.errors import ConfigurationError


def joined_field_name() -> str:
    """The user model's joined field, or ConfigurationError naming the setting."""
    name: str = settings.WELCOME_MAIL_JOINED_FIELD
    user_model = get_user_model()
    try:
        field = user_model._meta.get_field(name)
    except FieldDoesNotExist:
        raise ConfigurationError(
            f"{user_model._meta.label} has no field {name!r} to tell when a user joined; "
            "set WELCOME_MAIL_JOINED_FIELD to its date-time field, or use no cutoff "
            "and no --joined-* range."
        ) from None
    if field.get_internal_type() != "DateTimeField":
        raise ConfigurationError(
            f"WELCOME_MAIL_JOINED_FIELD names {user_model._meta.label}.{name}, "
            "which is not a date-time field."
        )
    return name


def rollout_cutoff() -> datetime | None:
    """``WELCOME_MAIL_SINCE``: users who joined before it get no welcome mail."""
    since: datetime | None = settings.WELCOME_MAIL_SINCE
    return since


def cutoff_reason(since: datetime) -> str:
    return f"joined before the rollout cutoff WELCOME_MAIL_SINCE={since.isoformat()}"


def joined_before_cutoff(user: AbstractBaseUser) -> str | None:
    """Why ``user`` gets no welcome mail by the cutoff, or None."""
    since = rollout_cutoff()
    if since is None:
        return None
    joined = getattr(user, joined_field_name(), None)
    # No join date counts as before any cutoff, as for welcome_mails sync.
    if joined is None or joined < since:
        return cutoff_reason(since)
    return None
