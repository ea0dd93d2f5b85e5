"""System checks of the profiles app: ``profiles.E001``, a rollout cutoff that cannot work.

With ``WELCOME_MAIL_SINCE`` set, the welcome-mail receiver compares every new
user's join date with it; a ``WELCOME_MAIL_JOINED_FIELD`` that names no
date-time field of the user model would make every user creation fail there.
An error, so every command (and ``runserver``) stops before it starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks

from dbtools.errors import ConfigurationError
from profiles.welcome.joined import joined_field_name, rollout_cutoff


def check_welcome_mail_cutoff(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    if rollout_cutoff() is None:
        return []
    try:
        joined_field_name()
    except ConfigurationError as exc:
        return [checks.Error(f"WELCOME_MAIL_SINCE is set, but {exc}", id="profiles.E001")]
    return []


def register() -> None:
    checks.register(check_welcome_mail_cutoff)
